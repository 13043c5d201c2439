// Package leasestore keeps the edge's leases (which owner holds which name or
// port, and the hashes of the secrets that reclaim it) where an edge restart,
// even kill -9, finds them again.
//
// Store is the seam for a store shared by several edges; File is the embedded
// implementation, one JSON file rewritten atomically. A file rather than an
// embedded database: the data is small (one record per tunnel), writes come
// only when agents register or leave, reads only at start-up, and a file
// written with write-temp-fsync-rename needs no dependency, no compaction and
// can be read and repaired with a text editor.
package leasestore

import (
	"bytes"
	"github.com/sluicehq/sluice/internal/atomicfile"

	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Record is one lease.
type Record struct {
	// Key names what is leased: "host:<hostname>" or "port:<number>".
	Key string `json:"key"`
	// Kind is the tunnel kind, "http" or "tcp".
	Kind string `json:"kind"`
	// Name is the tunnel's name (the subdomain, or a TCP tunnel's label).
	Name string `json:"name,omitempty"`
	// Owner is the hex identity of the owner (a hash, never a token).
	Owner string `json:"owner"`
	// OwnerName is the owner's name from the tokens file, for people.
	OwnerName string `json:"owner_name,omitempty"`
	// Secrets are the hex SHA-256 hashes of the lease secrets that reclaim
	// the key; the secrets themselves live only with the agents.
	Secrets []string `json:"secrets"`
	// Random is true when the edge chose the name or port.
	Random bool `json:"random,omitempty"`
	// Pooled is true when several agents share the key.
	Pooled bool `json:"pooled,omitempty"`
	// Since is when the lease was first granted.
	Since time.Time `json:"since"`
	// Connected is true while an agent serves the key. An edge that was
	// killed leaves it true; the next start counts the grace from then.
	Connected bool `json:"connected"`
	// LastSeen is when the last agent serving the key went away.
	LastSeen time.Time `json:"last_seen,omitzero"`
}

// Store keeps leases. Implementations must be safe for concurrent use. Put
// and Delete must not wait for slow storage: they run on the registration
// path, and a lease lost in a crash costs little (the agent asks for its name
// or port again). Load after Put sees the change.
type Store interface {
	Load() ([]Record, error)
	Put(Record) error
	Delete(key string) error
	Close() error
}

// Memory is a Store that forgets everything when the process ends.
type Memory struct {
	mu sync.Mutex
	m  map[string]Record
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory { return &Memory{m: map[string]Record{}} }

// Load implements Store.
func (s *Memory) Load() ([]Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sorted(s.m), nil
}

// Put implements Store.
func (s *Memory) Put(r Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[r.Key] = r
	return nil
}

// Delete implements Store.
func (s *Memory) Delete(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

// Close implements Store.
func (s *Memory) Close() error { return nil }

func sorted(m map[string]Record) []Record { return appendSorted(make([]Record, 0, len(m)), m) }

// appendSorted appends m's records to dst in key order.
func appendSorted(dst []Record, m map[string]Record) []Record {
	start := len(dst)
	for _, r := range m {
		dst = append(dst, r)
	}
	out := dst[start:]
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return dst
}

// fileFormat is the JSON document on disk.
type fileFormat struct {
	Version int      `json:"version"`
	Leases  []Record `json:"leases"`
}

const fileVersion = 1

// ErrLocked means another process holds the lease file.
var ErrLocked = errors.New("leasestore: another edge is using this lease file")

// File is a Store in one JSON file. Changes are written by a goroutine of
// its own, right after they are made, so a registration never waits for the
// disk (a rewrite with fsync took about 2 ms here, against 40 µs for the
// whole registration); changes made while a write is under way share the
// next one. Each write replaces the file whole (temporary file, fsync,
// rename, fsync of the directory), so a crash leaves the old or the new
// version, never a torn one.
type File struct {
	path string
	lock *os.File
	// OnError, when set right after OpenFile (before any change), receives
	// write failures.
	OnError func(error)

	mu      sync.Mutex
	m       map[string]Record
	gen     uint64 // changes made
	written uint64 // changes on disk
	werr    error
	wrote   *sync.Cond // signalled after each write

	kick chan struct{} // a change is waiting to be written
	quit chan struct{}
	done chan struct{}

	// The writer's own, reused from write to write: every write encodes
	// all leases, and an edge that agents join one after another would
	// otherwise make that much garbage at each join (at 100 leases about
	// 60 KB a write), which its heap, and so its RSS, grows by.
	recs []Record
	buf  bytes.Buffer
	enc  *json.Encoder
}

// OpenFile opens (creating if needed) the lease file at path and locks it
// against a second edge.
func OpenFile(path string) (*File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("leasestore: %w", err)
	}
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("leasestore: %w", err)
	}
	if err := lockFile(lock); err != nil {
		lock.Close()
		return nil, fmt.Errorf("%w (%s)", ErrLocked, path)
	}
	f := &File{path: path, lock: lock, m: map[string]Record{}, kick: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	f.wrote = sync.NewCond(&f.mu)
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		lock.Close()
		return nil, fmt.Errorf("leasestore: %w", err)
	default:
		var doc fileFormat
		if err := json.Unmarshal(data, &doc); err != nil {
			lock.Close()
			return nil, fmt.Errorf("leasestore: %s is not a lease file (%v): move it away to start with no leases", path, err)
		}
		if doc.Version != fileVersion {
			lock.Close()
			return nil, fmt.Errorf("leasestore: %s has format version %d, this build reads %d", path, doc.Version, fileVersion)
		}
		for _, r := range doc.Leases {
			f.m[r.Key] = r
		}
	}
	go f.writer()
	return f, nil
}

// Load implements Store.
func (f *File) Load() ([]Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return sorted(f.m), nil
}

// Put implements Store.
func (f *File) Put(r Record) error {
	f.mu.Lock()
	f.m[r.Key] = r
	f.gen++
	f.mu.Unlock()
	f.changed()
	return nil
}

// Delete implements Store.
func (f *File) Delete(key string) error {
	f.mu.Lock()
	if _, ok := f.m[key]; !ok {
		f.mu.Unlock()
		return nil
	}
	delete(f.m, key)
	f.gen++
	f.mu.Unlock()
	f.changed()
	return nil
}

func (f *File) changed() {
	select {
	case f.kick <- struct{}{}:
	default: // a write is already due; it takes this change too
	}
}

// Flush returns once every change made so far is on disk, with the error of
// the write that put it there.
func (f *File) Flush() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	gen := f.gen
	for f.written < gen {
		f.wrote.Wait()
	}
	return f.werr
}

// writer writes the file after changes until Close.
func (f *File) writer() {
	defer close(f.done)
	for {
		select {
		case <-f.kick:
			f.write()
		case <-f.quit:
			f.write()
			return
		}
	}
}

func (f *File) write() {
	f.mu.Lock()
	if f.written == f.gen {
		f.mu.Unlock()
		return
	}
	f.recs = appendSorted(f.recs[:0], f.m)
	snap := f.gen
	f.mu.Unlock()
	err := f.writeAtomic(fileFormat{Version: fileVersion, Leases: f.recs})
	clear(f.recs) // the records' strings are the map's to keep alive
	f.mu.Lock()
	f.written, f.werr = snap, err
	f.wrote.Broadcast()
	f.mu.Unlock()
	if err != nil && f.OnError != nil {
		f.OnError(err)
	}
}

// writeAtomic replaces the file with doc, indented, with a final newline.
// The writer goroutine only.
func (f *File) writeAtomic(doc fileFormat) error {
	if f.enc == nil {
		f.enc = json.NewEncoder(&f.buf)
		f.enc.SetIndent("", "  ")
	}
	f.buf.Reset()
	if err := f.enc.Encode(doc); err != nil {
		return fmt.Errorf("leasestore: %w", err)
	}
	if err := atomicfile.Write(f.path, f.buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("leasestore: %w", err)
	}
	return nil
}

// Close writes what is not written yet, stops the writer and releases the
// file's lock.
func (f *File) Close() error {
	if f.lock == nil {
		return nil
	}
	close(f.quit)
	<-f.done
	err := f.lock.Close()
	f.lock = nil
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.werr != nil {
		return f.werr
	}
	return err
}
