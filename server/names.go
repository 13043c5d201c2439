package server

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"strings"
)

// validName reports whether name can be a DNS label: 1 to 63 letters, digits
// and hyphens, not starting or ending with a hyphen.
func validName(name string) bool {
	if len(name) == 0 || len(name) > 63 || name[0] == '-' || name[len(name)-1] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// validHostname reports whether host is a DNS name made of valid labels.
func validHostname(host string) bool {
	if len(host) == 0 || len(host) > 253 {
		return false
	}
	for _, label := range strings.Split(host, ".") {
		if !validName(label) {
			return false
		}
	}
	return true
}

var (
	nameAdjectives = []string{
		"amber", "brave", "calm", "clever", "cosmic", "crisp", "dapper", "eager",
		"fancy", "gentle", "golden", "happy", "jolly", "keen", "lively", "lucky",
		"mellow", "merry", "misty", "nimble", "noble", "plucky", "proud", "quick",
		"quiet", "rapid", "rosy", "rustic", "shiny", "silent", "silver", "snowy",
		"solar", "sunny", "swift", "tidy", "vivid", "warm", "wild", "witty",
	}
	nameNouns = []string{
		"badger", "beacon", "brook", "canyon", "cedar", "comet", "coral", "crane",
		"delta", "falcon", "fern", "finch", "fjord", "gecko", "harbor", "heron",
		"island", "lagoon", "lark", "lynx", "maple", "meadow", "otter", "owl",
		"panda", "pebble", "pine", "quartz", "raven", "reef", "river", "robin",
		"sparrow", "spruce", "stream", "tiger", "tulip", "walrus", "willow", "zephyr",
	}
)

// randomName returns a readable random name such as "brave-otter-42": easy to
// read aloud, with about 2^17 possibilities, and retried by the caller on the
// rare collision.
func randomName() string {
	return pick(nameAdjectives) + "-" + pick(nameNouns) + "-" + fmt.Sprint(randInt(90)+10)
}

func pick(words []string) string { return words[randInt(len(words))] }

func randInt(n int) int {
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		panic("sluice: crypto/rand failed: " + err.Error()) // the OS has no entropy source: nothing sensible to do
	}
	return int(v.Int64())
}
