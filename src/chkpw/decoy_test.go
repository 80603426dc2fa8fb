package chkpw

import (
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestDecoyCostsWhatTheFileCosts: a missing user is refused after a bcrypt
// comparison as costly as the file's own hashes, not a fixed cost 10, so that
// whether a name exists cannot be told by timing in a file made with another cost.
func TestDecoyCostsWhatTheFileCosts(t *testing.T) {
	for _, cost := range []int{bcrypt.MinCost, 5, 11} {
		h, err := bcrypt.GenerateFromPassword([]byte("pw"), cost)
		if err != nil {
			t.Fatal(err)
		}
		es := []Entry{{User: "alice", Hash: string(h)}}
		if got, _ := bcrypt.Cost(decoy(es, nil)); got != cost {
			t.Errorf("missing user in a cost %d file: decoy cost %d", cost, got)
		}
		if got, _ := bcrypt.Cost(decoy(es, &es[0])); got != cost {
			t.Errorf("overlong password in a cost %d file: decoy cost %d", cost, got)
		}
	}
	if got, _ := bcrypt.Cost(decoy(nil, nil)); got != bcrypt.DefaultCost {
		t.Errorf("empty file: decoy cost %d", got)
	}
}
