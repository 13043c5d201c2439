package fleet

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The buckets of a fleet's shared state.
const (
	leaseBucket = "sluice-leases"
	edgeBucket  = "sluice-edges"
	// markerTTL is how long a removed lease's marker stays in the bucket:
	// long enough for every edge's watch to see the removal.
	markerTTL = time.Minute
)

var (
	// ErrTaken means a claim found the key already leased; the error comes
	// with the lease that holds it.
	ErrTaken = errors.New("fleet: the key is already leased")
	// ErrConflict means the lease changed since it was read: read it again
	// and decide again.
	ErrConflict = errors.New("fleet: the lease changed since it was read")
	// ErrNotFound means no lease has the key.
	ErrNotFound = errors.New("fleet: no such lease")
	// ErrUnreachable means the store did not answer at start.
	ErrUnreachable = errors.New("fleet: the store is unreachable")
)

// Lease is one lease as the fleet shares it: the edge's record, opaque here,
// and which edges hold an agent session that serves it. A lease outlives
// the edges that hold it; when the last holder goes (it lets go, or it dies
// and its membership expires) Released says when, and whoever keeps the
// record decides from then on whether it lapses.
type Lease struct {
	Key      string          `json:"-"`
	Value    json.RawMessage `json:"value"`
	Holders  []string        `json:"holders,omitempty"`
	Released time.Time       `json:"released,omitzero"`
	// Revision is the store's revision of this version of the lease; an
	// Update succeeds only against the latest one.
	Revision uint64 `json:"-"`
}

// Held reports whether edge holds the lease.
func (l Lease) Held(edge string) bool { return slices.Contains(l.Holders, edge) }

// Member is one edge of the fleet, as long as its membership is renewed.
type Member struct {
	ID      string            `json:"id"`
	Name    string            `json:"name"`
	Link    string            `json:"link"`
	Info    map[string]string `json:"info,omitempty"`
	Started time.Time         `json:"started"`
	// Leaving is set once the edge started to stop: it takes no new
	// agents, and the others forward to it only when no other edge holds
	// a lease.
	Leaving bool `json:"leaving,omitempty"`
}

// EventKind says what changed.
type EventKind int

// The kinds of change an edge learns of.
const (
	LeaseSet EventKind = iota + 1
	LeaseGone
	EdgeUp
	EdgeDown
)

// Event is one change to the fleet: Lease is set for lease changes (only
// Key for LeaseGone), Member for members.
type Event struct {
	Kind   EventKind
	Lease  Lease
	Member Member
}

// Stats counts the store operations this edge made.
type Stats struct {
	Ops, Errors uint64
	// Latency is the time all operations took, together.
	Latency time.Duration
	// Connected is false while the store does not answer: the edge then
	// serves what it knows and grants nothing new.
	Connected bool
}

// Store is an edge's view of the fleet: leases with compare-and-set in a
// JetStream key-value bucket, the members' liveness in another, and a local
// copy of both kept current by watches.
type Store struct {
	cfg  Config
	id   string
	auth *auth
	node *node
	nc   *nats.Conn
	js   jetstream.JetStream

	leases, edges jetstream.KeyValue
	more          buckets // opened on first use
	edgeRev       atomic.Uint64
	selfMu        sync.Mutex // guards member, which Leaving changes
	member        Member
	renewNow      chan struct{}

	mu      sync.RWMutex
	cache   map[string]Lease
	members map[string]Member
	held    map[string]bool
	gone    map[string]bool // edges seen leaving that may still hold leases

	ops, errs, latency atomic.Uint64
	down               atomic.Bool

	stop     chan struct{}
	sweepNow chan struct{}
	watching chan struct{} // closed to end the current watches
	// ownSeen is the newest revision of this edge's membership the watch
	// delivered; checkRev and checkAt are a renewal it must deliver soon.
	ownSeen  atomic.Uint64
	checkRev uint64
	checkAt  time.Time
	life     context.Context // ends at Close
	endLife  context.CancelFunc
	wg       sync.WaitGroup
	closeMu  sync.Mutex
	closed   bool
}

// Open joins the fleet: it starts the embedded store node (or connects to
// the external NATS), makes the buckets, registers this edge and loads the
// fleet's leases and members. It fails with ErrUnreachable when the store
// does not answer within cfg.StartTimeout.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var idb [6]byte
	rand.Read(idb[:])
	s := &Store{
		cfg:      cfg,
		id:       hex.EncodeToString(idb[:]),
		cache:    map[string]Lease{},
		members:  map[string]Member{},
		held:     map[string]bool{},
		gone:     map[string]bool{},
		stop:     make(chan struct{}),
		sweepNow: make(chan struct{}, 1),
		renewNow: make(chan struct{}, 1),
	}
	s.life, s.endLife = context.WithCancel(context.Background())
	var err error
	if s.auth, err = newAuth(cfg.Secret, s.id); err != nil {
		return nil, err
	}
	if err := s.connect(); err != nil {
		s.shutdown()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	if err := s.open(ctx); err != nil {
		s.shutdown()
		return nil, err
	}
	s.wg.Add(2)
	go s.heartbeat()
	go s.sweeper()
	return s, nil
}

func (s *Store) connect() error {
	handlers := []nats.Option{
		nats.Name("sluice edge " + s.cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if s.life.Err() != nil {
				return // this edge is leaving
			}
			s.down.Store(true)
			s.cfg.Logger.Warn("fleet: lost the store; serving what this edge knows, granting nothing new", "err", err)
		}),
		nats.ReconnectHandler(func(*nats.Conn) {
			s.down.Store(false)
			s.cfg.Logger.Info("fleet: store connection back")
		}),
	}
	if s.cfg.NATS == "" {
		n, err := startNode(s.cfg, s.auth, s.id)
		if err != nil {
			return err
		}
		s.node = n
		s.nc, err = nats.Connect("", append(handlers, nats.InProcessServer(n.srv), nats.UserInfo(localUser, s.auth.client))...)
		if err != nil {
			return fmt.Errorf("fleet: connect to the embedded store: %w", err)
		}
	} else {
		opts := append(handlers, nats.Timeout(min(s.cfg.StartTimeout, 10*time.Second)))
		if s.cfg.NATSCredsFile != "" {
			opts = append(opts, nats.UserCredentials(s.cfg.NATSCredsFile))
		}
		if s.cfg.NATSCAFile != "" {
			opts = append(opts, nats.RootCAs(s.cfg.NATSCAFile))
		}
		if s.cfg.NATSCertFile != "" || s.cfg.NATSKeyFile != "" {
			opts = append(opts, nats.ClientCert(s.cfg.NATSCertFile, s.cfg.NATSKeyFile))
		}
		nc, err := nats.Connect(s.cfg.NATS, opts...)
		if err != nil {
			return fmt.Errorf("%w: NATS at %s: %v; check the address, that the server runs, and the credentials", ErrUnreachable, s.cfg.NATS, err)
		}
		s.nc = nc
	}
	js, err := jetstream.New(s.nc)
	if err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	s.js = js
	return nil
}

// open makes (or finds) the buckets, registers this edge and reads the
// fleet's state. The embedded store answers once its nodes have elected a
// leader, so it retries until ctx ends.
func (s *Store) open(ctx context.Context) error {
	var last error
	for {
		last = s.openOnce(ctx)
		if last == nil {
			return nil
		}
		if errors.Is(last, jetstream.ErrLimitMarkerTTLNotSupported) {
			return fmt.Errorf("fleet: the NATS server is too old: per-key expiry needs NATS 2.11 or later (%w)", last)
		}
		select {
		case <-ctx.Done():
			what := "the NATS server's JetStream"
			if s.node != nil {
				what = fmt.Sprintf("the embedded store (a fleet of %d edges answers once %d of them run)", len(edgeSet(s.cfg.Listen, s.cfg.Join)), len(edgeSet(s.cfg.Listen, s.cfg.Join))/2+1)
			}
			return fmt.Errorf("%w: %s did not answer within %s: %v", ErrUnreachable, what, s.cfg.StartTimeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (s *Store) openOnce(ctx context.Context) error {
	octx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var err error
	if s.leases == nil {
		if s.leases, err = s.bucket(octx, leaseBucket); err != nil {
			return err
		}
	}
	if s.edges == nil {
		if s.edges, err = s.bucket(octx, edgeBucket); err != nil {
			return err
		}
	}
	if s.edgeRev.Load() == 0 {
		s.selfMu.Lock()
		s.member = Member{ID: s.id, Name: s.cfg.Name, Link: s.cfg.Advertise, Info: s.cfg.Info, Started: time.Now().UTC()}
		s.selfMu.Unlock()
		if err := s.register(octx); err != nil {
			return err
		}
	}
	if s.watching == nil {
		if err := s.startWatches(ctx, false); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) bucket(ctx context.Context, name string) (jetstream.KeyValue, error) {
	replicas := s.cfg.Replicas
	if replicas == 0 {
		replicas = MaxReplicas
	}
	for {
		kv, err := s.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:         name,
			Description:    "sluice fleet",
			History:        1,
			Replicas:       replicas,
			Storage:        jetstream.FileStorage,
			LimitMarkerTTL: markerTTL,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			// Made by another edge, perhaps with another replica count
			// while the fleet was smaller: use it as it is.
			return s.js.KeyValue(ctx, name)
		}
		var apiErr *jetstream.APIError
		if s.cfg.Replicas == 0 && replicas > 1 && errors.As(err, &apiErr) && (apiErr.ErrorCode == errReplicasNotSupported || apiErr.ErrorCode == errClusterNoPeers) {
			s.cfg.Logger.Warn("fleet: the NATS server keeps one copy of the leases (it is not a cluster of three)", "bucket", name)
			replicas = 1
			continue
		}
		return kv, err
	}
}

// register writes this edge's membership, which expires unless renewed.
func (s *Store) register(ctx context.Context) error {
	data := s.memberJSON()
	rev, err := s.edges.Create(ctx, s.id, data, jetstream.KeyTTL(s.cfg.EdgeTTL))
	if err != nil {
		return err
	}
	s.edgeRev.Store(rev)
	return nil
}

// ID is this edge's identity in the fleet, new at every start.
func (s *Store) ID() string { return s.id }

// Self is this edge's membership record.
func (s *Store) Self() Member {
	s.selfMu.Lock()
	defer s.selfMu.Unlock()
	return s.member
}

func (s *Store) memberJSON() []byte {
	s.selfMu.Lock()
	defer s.selfMu.Unlock()
	data, _ := json.Marshal(s.member)
	return data
}

// Leaving marks this edge's membership as leaving, and tells the fleet at
// once rather than at the next renewal.
func (s *Store) Leaving() {
	s.selfMu.Lock()
	s.member.Leaving = true
	s.selfMu.Unlock()
	select {
	case s.renewNow <- struct{}{}:
	default:
	}
}

// Members lists the edges whose membership is current, this one included.
func (s *Store) Members() []Member {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return byKey(s.members)
}

// Member returns the edge with the given ID, if its membership is current.
func (s *Store) Member(id string) (Member, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m, ok := s.members[id]
	return m, ok
}

// Lookup returns the lease as this edge last learned of it, without asking
// the store: what forwarding decisions read.
func (s *Store) Lookup(key string) (Lease, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	l, ok := s.cache[key]
	return l, ok
}

// Leases returns every lease this edge knows of.
func (s *Store) Leases() []Lease {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return byKey(s.cache)
}

// byKey returns m's values in the order of their keys.
func byKey[V any](m map[string]V) []V {
	out := make([]V, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[k])
	}
	return out
}

// Stats returns the operation counters.
func (s *Store) Stats() Stats {
	return Stats{
		Ops:       s.ops.Load(),
		Errors:    s.errs.Load(),
		Latency:   time.Duration(s.latency.Load()),
		Connected: !s.down.Load(),
	}
}

// Get reads the lease from the store (not from this edge's copy). It asks
// the bucket's leader: the key-value API's own Get may be answered by any
// replica, which can lag behind a change just made.
func (s *Store) Get(ctx context.Context, key string) (Lease, error) {
	var l Lease
	err := s.op(ctx, func(ctx context.Context) error {
		var err error
		l, err = s.leaderGet(ctx, key)
		return err
	})
	return l, err
}

func (s *Store) leaderGet(ctx context.Context, key string) (Lease, error) {
	req, _ := json.Marshal(map[string]string{"last_by_subj": "$KV." + leaseBucket + "." + encodeKey(key)})
	msg, err := s.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.KV_"+leaseBucket, req)
	if err != nil {
		return Lease{}, err
	}
	var resp struct {
		Message *struct {
			Seq  uint64 `json:"seq"`
			Hdrs []byte `json:"hdrs"`
			Data []byte `json:"data"`
		} `json:"message"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return Lease{}, fmt.Errorf("fleet: the store's answer: %w", err)
	}
	if resp.Error != nil {
		if resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound {
			return Lease{}, ErrNotFound
		}
		return Lease{}, resp.Error
	}
	if resp.Message == nil {
		return Lease{}, errors.New("fleet: the store answered without a message")
	}
	// A removed key's last message is its marker: KV-Operation DEL or PURGE.
	if bytes.Contains(resp.Message.Hdrs, []byte("KV-Operation")) || len(resp.Message.Data) == 0 {
		return Lease{}, ErrNotFound
	}
	var l Lease
	if err := json.Unmarshal(resp.Message.Data, &l); err != nil {
		return Lease{}, fmt.Errorf("fleet: lease %s: %w", key, err)
	}
	l.Key, l.Revision = key, resp.Message.Seq
	return l, nil
}

// Claim leases key to value if no one holds it: exactly one of any number
// of edges claiming the same key at once succeeds. With hold, this edge is
// recorded as a holder. When the key is taken it returns ErrTaken with the
// lease that has it.
func (s *Store) Claim(ctx context.Context, key string, value []byte, hold bool) (Lease, error) {
	l := Lease{Key: key, Value: value}
	if hold {
		l.Holders = []string{s.id}
	}
	data, err := json.Marshal(l)
	if err != nil {
		return Lease{}, fmt.Errorf("fleet: %w", err)
	}
	err = s.op(ctx, func(ctx context.Context) error {
		rev, err := s.leases.Create(ctx, encodeKey(key), data)
		l.Revision = rev
		return err
	})
	if errors.Is(err, jetstream.ErrKeyExists) {
		// The leader refuses a claim against a rival's claim that is
		// proposed and not yet applied; reading it may take a moment more.
		for range 50 {
			cur, gerr := s.Get(ctx, key)
			if gerr == nil {
				return cur, ErrTaken
			}
			if !errors.Is(gerr, ErrNotFound) {
				return Lease{}, fmt.Errorf("%w (%v)", ErrTaken, gerr)
			}
			time.Sleep(5 * time.Millisecond)
		}
		return Lease{}, ErrTaken
	}
	if err != nil {
		return Lease{}, err
	}
	s.noteHeld(key, hold)
	s.remember(l)
	return l, nil
}

// Update replaces the lease if it is still at l.Revision; otherwise it
// fails with ErrConflict and changes nothing.
func (s *Store) Update(ctx context.Context, l Lease) (Lease, error) {
	data, err := json.Marshal(l)
	if err != nil {
		return Lease{}, fmt.Errorf("fleet: %w", err)
	}
	err = s.op(ctx, func(ctx context.Context) error {
		rev, err := s.leases.Update(ctx, encodeKey(l.Key), data, l.Revision)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return fmt.Errorf("%w: %s", ErrConflict, l.Key)
		}
		l.Revision = rev
		return err
	})
	if err != nil {
		return Lease{}, err
	}
	s.noteHeld(l.Key, l.Held(s.id))
	s.remember(l)
	return l, nil
}

// Delete removes the lease if it is still at revision rev.
func (s *Store) Delete(ctx context.Context, key string, rev uint64) error {
	err := s.op(ctx, func(ctx context.Context) error {
		err := s.leases.Purge(ctx, encodeKey(key), jetstream.LastRevision(rev), jetstream.PurgeTTL(markerTTL))
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return fmt.Errorf("%w: %s", ErrConflict, key)
		}
		return err
	})
	if err == nil {
		s.noteHeld(key, false)
	}
	return err
}

// Hold records this edge as a holder of the lease.
func (s *Store) Hold(ctx context.Context, key string) (Lease, error) {
	return s.modify(ctx, key, func(l *Lease) bool {
		if l.Held(s.id) {
			return false
		}
		l.Holders = append(l.Holders, s.id)
		l.Released = time.Time{}
		return true
	})
}

// Release records that this edge no longer holds the lease; if no holder
// remains, the lease is released from now.
func (s *Store) Release(ctx context.Context, key string) (Lease, error) {
	s.noteHeld(key, false)
	return s.release(ctx, key, s.id)
}

func (s *Store) release(ctx context.Context, key, edge string) (Lease, error) {
	return s.modify(ctx, key, func(l *Lease) bool {
		i := slices.Index(l.Holders, edge)
		if i < 0 {
			return false
		}
		l.Holders = slices.Delete(l.Holders, i, i+1)
		if len(l.Holders) == 0 {
			l.Released = time.Now().UTC()
		}
		return true
	})
}

// modify applies f to the latest lease and writes it back, again as long as
// another edge changed it in between.
func (s *Store) modify(ctx context.Context, key string, f func(*Lease) bool) (Lease, error) {
	l, ok := s.Lookup(key)
	for attempt := 0; ; attempt++ {
		if !ok || attempt > 0 {
			var err error
			if l, err = s.Get(ctx, key); err != nil {
				return Lease{}, err
			}
		}
		// The copy's slice is shared with the cache: change a clone.
		l.Holders = slices.Clone(l.Holders)
		if !f(&l) {
			return l, nil
		}
		nl, err := s.Update(ctx, l)
		if errors.Is(err, ErrConflict) && attempt < 16 {
			continue
		}
		return nl, err
	}
}

func (s *Store) noteHeld(key string, held bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if held {
		s.held[key] = true
	} else {
		delete(s.held, key)
	}
}

// remember puts a lease this edge wrote into its copy at once, rather than
// when the watch brings it back; an older version never replaces a newer.
func (s *Store) remember(l Lease) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.cache[l.Key]; !ok || cur.Revision < l.Revision {
		s.cache[l.Key] = l
	}
}

// op runs one store operation within OpTimeout and counts it.
func (s *Store) op(ctx context.Context, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	start := time.Now()
	err := f(ctx)
	s.ops.Add(1)
	s.latency.Add(uint64(time.Since(start)))
	if err != nil && !errors.Is(err, ErrConflict) && !errors.Is(err, ErrNotFound) && !errors.Is(err, jetstream.ErrKeyExists) {
		s.errs.Add(1)
		return fmt.Errorf("fleet: store: %w", err)
	}
	return err
}

// sweepGone removes the edges that left from every lease they held. Every
// edge that sees one go does it, and the compare-and-set makes the second
// a no-op; what fails (the store electing a leader) is tried again at the
// next heartbeat.
func (s *Store) sweepGone() {
	s.mu.RLock()
	gone := slices.Collect(maps.Keys(s.gone))
	s.mu.RUnlock()
	for _, edge := range gone {
		clean := true
		for _, l := range s.Leases() {
			if !l.Held(edge) {
				continue
			}
			ctx, cancel := context.WithTimeout(s.life, s.cfg.OpTimeout)
			_, err := s.release(ctx, l.Key, edge)
			cancel()
			if err != nil && !errors.Is(err, ErrNotFound) {
				clean = false
				if s.life.Err() == nil {
					s.cfg.Logger.Debug("fleet: could not yet release a lease of a gone edge", "key", l.Key, "edge", edge, "err", err)
				}
			}
		}
		if clean {
			s.mu.Lock()
			if _, back := s.members[edge]; back || s.stillHeld(edge) == false {
				delete(s.gone, edge)
			}
			s.mu.Unlock()
		}
	}
}

// stillHeld reports whether any lease in the copy lists edge; s.mu is held.
func (s *Store) stillHeld(edge string) bool {
	for _, l := range s.cache {
		if l.Held(edge) {
			return true
		}
	}
	return false
}

// sweeper sweeps when an edge leaves, and at every heartbeat while some
// sweep is unfinished.
func (s *Store) sweeper() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-s.sweepNow:
		case <-t.C:
			s.mu.RLock()
			idle := len(s.gone) == 0
			s.mu.RUnlock()
			if idle {
				continue
			}
		case <-s.stop:
			return
		}
		s.sweepGone()
	}
}

func (s *Store) kickSweep() {
	select {
	case s.sweepNow <- struct{}{}:
	default:
	}
}

// heartbeat renews this edge's membership until Close. A renewal is a
// compare-and-set that also sets the key's expiry again; if it fails because
// the membership expired meanwhile, the edge registers anew and holds again
// what it holds, since other edges have released it.
func (s *Store) heartbeat() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.Heartbeat)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-t.C:
		case <-s.renewNow:
		case <-s.stop:
			return
		}
		err := s.renew()
		if err != nil && !failing {
			s.cfg.Logger.Warn("fleet: the store does not answer; serving what this edge knows, granting no new names or ports, and the fleet forgets this edge unless the store answers again", "err", err, "within", s.cfg.EdgeTTL)
		} else if err == nil && failing {
			s.cfg.Logger.Info("fleet: the store answers again; membership renewed")
		}
		failing = err != nil
		s.down.Store(failing || s.nc.Status() != nats.CONNECTED)
	}
}

func (s *Store) renew() error {
	data := s.memberJSON()
	var rev uint64
	err := s.op(s.life, func(ctx context.Context) error {
		ack, err := s.js.PublishMsg(ctx, &nats.Msg{Subject: "$KV." + edgeBucket + "." + s.id, Data: data},
			jetstream.WithExpectLastSequencePerSubject(s.edgeRev.Load()), jetstream.WithMsgTTL(s.cfg.EdgeTTL))
		if err != nil {
			return err
		}
		rev = ack.Sequence
		return nil
	})
	if err == nil {
		s.edgeRev.Store(rev)
		s.checkWatch(rev)
		return nil
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || (apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence && apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return err
	}
	// The membership expired: join again, and hold again.
	err = s.op(s.life, func(ctx context.Context) error { return s.register(ctx) })
	if err != nil {
		return err
	}
	s.mu.RLock()
	keys := slices.Collect(maps.Keys(s.held))
	s.mu.RUnlock()
	for _, k := range keys {
		ctx, cancel := context.WithTimeout(s.life, s.cfg.OpTimeout)
		_, err := s.Hold(ctx, k)
		cancel()
		if err != nil {
			s.cfg.Logger.Warn("fleet: could not hold a lease again after rejoining", "key", k, "err", err)
		}
	}
	return nil
}

// Close leaves the fleet: this edge's membership is removed at once (the
// others release what it held) and the embedded node stops.
func (s *Store) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.stop)
	s.handLeadership()
	if s.edges != nil && s.edgeRev.Load() != 0 {
		// Leaving is a courtesy that saves the others EdgeTTL; a store
		// that does not answer at once is not waited for.
		ctx, cancel := context.WithTimeout(context.Background(), min(s.cfg.OpTimeout, time.Second))
		s.edges.Purge(ctx, s.id, jetstream.PurgeTTL(markerTTL))
		cancel()
	}
	s.shutdown()
	s.wg.Wait()
	return nil
}

// handLeadership asks the buckets this edge's node leads to elect another
// leader before the node stops. A leader that just vanishes is replaced
// only after an election timeout of several seconds, during which no
// claim can be written; one that steps down is replaced in milliseconds.
func (s *Store) handLeadership() {
	if s.node == nil || s.js == nil {
		return
	}
	self := s.node.srv.Name()
	for _, bucket := range []string{leaseBucket, edgeBucket} {
		stream := "KV_" + bucket
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := s.js.Stream(ctx, stream)
		if err == nil {
			info := st.CachedInfo()
			if info.Cluster != nil && info.Cluster.Leader == self {
				// Any node passes the request to the stream's leader:
				// only the leader itself may send it.
				_, err = s.nc.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+stream, nil)
				for err == nil && ctx.Err() == nil {
					info, ierr := st.Info(ctx)
					if ierr == nil && info.Cluster != nil && info.Cluster.Leader != "" && info.Cluster.Leader != self {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		}
		cancel()
		if err != nil {
			s.cfg.Logger.Debug("fleet: handing the store's leadership to another node failed", "bucket", bucket, "err", err)
		}
	}
}

func (s *Store) shutdown() {
	s.endLife()
	// Closing the connection ends the watches too; stopping them one by
	// one would first ask the store to delete their consumers, which waits
	// out a timeout when the store has lost its majority.
	if s.nc != nil {
		s.nc.Close()
	}
	if s.node != nil {
		s.node.stop()
	}
}

func decodeLease(e jetstream.KeyValueEntry) (Lease, error) {
	var l Lease
	if err := json.Unmarshal(e.Value(), &l); err != nil {
		return Lease{}, fmt.Errorf("fleet: lease %s: %w", e.Key(), err)
	}
	key, err := decodeKey(e.Key())
	if err != nil {
		return Lease{}, err
	}
	l.Key, l.Revision = key, e.Revision()
	return l, nil
}

// encodeKey turns a lease key ("host:app.example.com", "port:8080") into a
// bucket key, which allows only letters, digits and -_=./: every other
// byte, and '=' itself, becomes =XX.
func encodeKey(key string) string {
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			b.WriteByte(c)
		case c == '.' && i > 0 && i < len(key)-1 && key[i-1] != '.':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "=%02X", c)
		}
	}
	return b.String()
}

func decodeKey(k string) (string, error) {
	if !strings.Contains(k, "=") {
		return k, nil
	}
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		if k[i] != '=' {
			b.WriteByte(k[i])
			continue
		}
		if i+2 >= len(k) {
			return "", fmt.Errorf("fleet: bad key %q in the store", k)
		}
		v, err := hex.DecodeString(k[i+1 : i+3])
		if err != nil {
			return "", fmt.Errorf("fleet: bad key %q in the store", k)
		}
		b.WriteByte(v[0])
		i += 2
	}
	return b.String(), nil
}

// JetStream's error codes for a replica count the server cannot keep: it
// is not clustered, or has too few peers.
const (
	errReplicasNotSupported jetstream.ErrorCode = 10074
	errClusterNoPeers       jetstream.ErrorCode = 10005
)
