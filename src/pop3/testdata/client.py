# A POP3 client session with Python's poplib, for pop3_test.go.
# usage: client.py host port cafile mode user password
#   mode: plain (USER/PASS in clear), stls (STLS first)
# Prints one JSON object describing what the server did.
import json
import poplib
import ssl
import sys

host, port, cafile, mode, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
out = {}
p = poplib.POP3(host, port, timeout=60)
out["greeting"] = p.getwelcome().decode()
out["capa"] = sorted(p.capa().keys())
if mode == "stls":
    p.stls(ssl.create_default_context(cafile=cafile))
    out["capa_tls"] = sorted(p.capa().keys())
try:
    p.user(user)
    p.pass_(password)
except poplib.error_proto as e:
    out["error"] = e.args[0].decode()
    print(json.dumps(out))
    sys.exit(0)
out["stat"] = list(p.stat())
out["list"] = [l.decode() for l in p.list()[1]]
out["uidl"] = [l.decode() for l in p.uidl()[1]]
if out["stat"][0] > 0:
    out["retr1"] = "\n".join(l.decode() for l in p.retr(1)[1])
    out["top1"] = "\n".join(l.decode() for l in p.top(1, 1)[1])
    p.dele(1)
    try:
        p.retr(1)
    except poplib.error_proto as e:
        out["retr_deleted"] = e.args[0].decode()
out["quit"] = p.quit().decode()
print(json.dumps(out))
