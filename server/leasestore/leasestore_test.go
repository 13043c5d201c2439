package leasestore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func rec(key string) Record {
	return Record{Key: key, Kind: "http", Owner: "ab", Secrets: []string{"cd"}, Since: time.Unix(1700000000, 0).UTC(), Connected: true}
}

func TestFileKeepsRecordsAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases.json")
	f, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"host:a.localhost", "port:20001", "host:b.localhost"} {
		if err := f.Put(rec(k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Delete("host:b.localhost"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	g, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	got, _ := g.Load()
	if len(got) != 2 || got[0].Key != "host:a.localhost" || got[1].Key != "port:20001" || !got[0].Since.Equal(rec("x").Since) {
		t.Fatalf("reopened store holds %+v", got)
	}
}

func TestFileIsLockedAgainstASecondEdge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases.json")
	f, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := OpenFile(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
}

func TestFileConcurrentPutsAllLand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases.json")
	f, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f.Put(rec(fmt.Sprintf("port:%d", 20000+i))); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	f.Close()
	// What is on disk, not what is in memory, must hold all fifty.
	g, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if got, _ := g.Load(); len(got) != 50 {
		t.Fatalf("%d records on disk after 50 concurrent puts", len(got))
	}
	if tmp, _ := filepath.Glob(path + ".tmp*"); len(tmp) != 0 {
		t.Fatalf("temporary files left behind: %v", tmp)
	}
}

func TestFileRefusesAForeignFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases.json")
	os.WriteFile(path, []byte("not json"), 0o600)
	_, err := OpenFile(path)
	if err == nil || !strings.Contains(err.Error(), "move it away") {
		t.Fatalf("OpenFile of garbage: %v, want an error saying what to do", err)
	}
}
