package kvcache

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func blobPath(b *Blobs, h Hash) string {
	dir, name := b.path(h)
	return filepath.Join(dir, name)
}

// corruptFile flips one byte at off (from the end if negative).
func corruptFile(t testing.TB, path string, off int) {
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	if off < 0 {
		off += len(data)
	}
	data[off] ^= 0x5a
	require.NoError(t, os.WriteFile(path, data, 0o644))
}

// patternSource serves pattern(h) for a snapshot's blocks.
type patternSource struct {
	hs []Hash
	bb int
}

func (p patternSource) BlockBytes() int { return p.bb }
func (p patternSource) ReadBlock(i int, dst []byte) error {
	copy(dst, pattern(p.hs[i], p.bb))
	return nil
}

func testSnapshot(tokens []int32, meta string) *Snapshot {
	return &Snapshot{Fingerprint: testFP, Tokens: tokens, Blocks: BlockHashes(testFP, Salt{}, tokens), Meta: []byte(meta)}
}

func saveTest(t testing.TB, s *Store, id string, snap *Snapshot, bb int) {
	require.NoError(t, s.Save(id, snap, patternSource{snap.Blocks, bb}))
}

func TestValidID(t *testing.T) {
	good := []string{"a", "sess-1", "user:42.x_y", "0", strings.Repeat("z", 128)}
	bad := []string{"", "../x", "a/b", "a\x00b", strings.Repeat("z", 129), ".hidden", "-x", "é", " a", "a b", `a\b`}
	for _, id := range good {
		assert.NoError(t, ValidID(id), "%q", id)
	}
	for _, id := range bad {
		assert.ErrorIs(t, ValidID(id), ErrBadID, "%q", id)
	}
	s, err := OpenStore(t.TempDir(), testFP, StoreOptions{})
	require.NoError(t, err)
	for _, id := range bad {
		assert.ErrorIs(t, s.Save(id, testSnapshot(nil, ""), nil), ErrBadID)
		_, err := s.Load(id)
		assert.ErrorIs(t, err, ErrBadID)
		assert.ErrorIs(t, s.Delete(id), ErrBadID)
	}
}

func TestStoreRoundTrip(t *testing.T) {
	const bb = 128
	dir := t.TempDir()
	s, err := OpenStore(dir, testFP, StoreOptions{})
	require.NoError(t, err)
	a := testSnapshot(seqTokens(1, 10), "meta a")
	b := testSnapshot(append(seqTokens(1, 8), 5, 6, 7, 8, 9), "meta b") // shares 2 blocks with a
	saveTest(t, s, "a", a, bb)
	saveTest(t, s, "b:2", b, bb)
	long := strings.Repeat("L", maxIDLen)
	saveTest(t, s, long, b, bb)
	require.NoError(t, s.Delete(long), "the longest id makes a valid file name")
	empty := &Snapshot{Fingerprint: testFP}
	require.NoError(t, s.Save("empty", empty, nil))
	ids, err := s.List()
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b:2", "empty"}, ids)
	distinct := map[Hash]bool{}
	for _, h := range append(a.Blocks, b.Blocks...) {
		distinct[h] = true
	}
	assert.Len(t, distinct, 5)
	assert.Equal(t, int64(len(distinct)*(blobHeader+bb+4)), s.Blobs().Bytes(), "shared blocks are stored once")

	got, err := s.Load("b:2")
	require.NoError(t, err)
	assert.Equal(t, b, got)
	got, err = s.Load("empty")
	require.NoError(t, err)
	assert.Empty(t, got.Tokens)
	require.NoError(t, s.Check("a"))

	// A store reopened sees the same, and sweeps nothing held.
	s2, err := OpenStore(dir, testFP, StoreOptions{})
	require.NoError(t, err)
	got, err = s2.Load("a")
	require.NoError(t, err)
	assert.Equal(t, a, got)
	n, err := s2.GC()
	require.NoError(t, err)
	assert.Zero(t, n)

	// Replacing a releases blocks only it held.
	a2 := testSnapshot(seqTokens(1, 4), "meta a2")
	saveTest(t, s2, "a", a2, bb)
	assert.False(t, s2.Blobs().Has(a.Blocks[2]), "a's old partial block is gone")
	assert.True(t, s2.Blobs().Has(a.Blocks[1]), "b still holds it")
	require.NoError(t, s2.Delete("b:2"))
	require.NoError(t, s2.Delete("a"))
	require.NoError(t, s2.Delete("empty"))
	assert.ErrorIs(t, s2.Delete("a"), ErrNotFound)
	_, err = s2.Load("a")
	assert.ErrorIs(t, err, ErrNotFound)
	assert.Zero(t, s2.Blobs().Bytes(), "no block is left once no snapshot holds it")
	assert.Error(t, s2.Save("x", testSnapshot(seqTokens(1, 5), ""), nil), "blocks missing and no source")
	assert.Error(t, s2.Save("x", &Snapshot{Fingerprint: testFP, Tokens: seqTokens(1, 5)}, nil), "blocks do not fit the tokens")
}

func TestFingerprintMismatch(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir, testFP, StoreOptions{})
	require.NoError(t, err)
	saveTest(t, s, "s", testSnapshot(seqTokens(1, 5), ""), 16)
	tests := []struct {
		name string
		fp   Fingerprint
		want string
	}{
		{"model", NewFingerprint([]byte("model-b"), []byte("config-a"), "f32", testBT), "model differs"},
		{"config", NewFingerprint([]byte("model-a"), []byte("config-b"), "f32", testBT), "config or tokenizer differs"},
		{"kv type", NewFingerprint([]byte("model-a"), []byte("config-a"), "bf16", testBT), `KV type "f32", want "bf16"`},
		{"block tokens", NewFingerprint([]byte("model-a"), []byte("config-a"), "f32", 16), "4 tokens per block, want 16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			other, err := OpenStore(dir, tt.fp, StoreOptions{})
			require.NoError(t, err)
			_, err = other.Load("s")
			require.ErrorIs(t, err, ErrFingerprint)
			assert.Contains(t, err.Error(), tt.want)
			assert.Contains(t, err.Error(), `session "s"`)
		})
	}
	// Opening under another fingerprint keeps this one's blocks.
	require.NoError(t, s.Check("s"))
}

// recordSpans returns the byte ranges of a snapshot's records.
func recordSpans(data []byte) [][2]int {
	var out [][2]int
	off := len(snapMagic) + 2
	for off+9 <= len(data) {
		n := int(uint32(data[off+1]) | uint32(data[off+2])<<8 | uint32(data[off+3])<<16 | uint32(data[off+4])<<24)
		out = append(out, [2]int{off, off + 9 + n})
		off += 9 + n
	}
	return out
}

func TestCorruption(t *testing.T) {
	const bb = 64
	snaps := map[string]*Snapshot{
		"a": testSnapshot(seqTokens(1, 9), "a"),
		"b": testSnapshot(seqTokens(2, 6), "bb"),
		"c": testSnapshot(seqTokens(3, 3), "ccc"),
	}
	setup := func(t *testing.T) (*Store, string) {
		dir := t.TempDir()
		s, err := OpenStore(dir, testFP, StoreOptions{})
		require.NoError(t, err)
		for id, sn := range snaps {
			saveTest(t, s, id, sn, bb)
		}
		return s, s.path("b")
	}
	orig, err := os.ReadFile(func() string { _, p := setup(t); return p }())
	require.NoError(t, err)
	spans := recordSpans(orig)
	require.Len(t, spans, 5)

	type damage struct {
		name   string
		mutate func([]byte) []byte
		want   string
	}
	var cases []damage
	for k, sp := range spans {
		for _, at := range []int{0, 3, (sp[1] - sp[0]) / 2, sp[1] - sp[0] - 1} {
			cases = append(cases, damage{fmt.Sprintf("flip %s+%d", recNames[k+1], at), func(d []byte) []byte {
				d[sp[0]+at] ^= 0x01
				return d
			}, fmt.Sprintf("record %d (%s)", k+1, recNames[k+1])})
		}
		cases = append(cases, damage{fmt.Sprintf("cut in %s", recNames[k+1]), func(d []byte) []byte {
			return d[:sp[0]+(sp[1]-sp[0])/2]
		}, fmt.Sprintf("record %d (%s)", k+1, recNames[k+1])})
	}
	cases = append(cases,
		damage{"magic", func(d []byte) []byte { d[0] = 'X'; return d }, "bad magic"},
		damage{"version", func(d []byte) []byte { d[8] = 9; return d }, "version 9"},
		damage{"empty", func(d []byte) []byte { return nil }, "bad magic"},
		damage{"trailing bytes", func(d []byte) []byte { return append(d, 0) }, "after the end record"},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, path := setup(t)
			require.NoError(t, os.WriteFile(path, tc.mutate(append([]byte(nil), orig...)), 0o644))
			_, err := s.Load("b")
			require.ErrorIs(t, err, ErrCorrupt)
			assert.Contains(t, err.Error(), `session "b"`)
			assert.Contains(t, err.Error(), tc.want)
			for _, id := range []string{"a", "c"} {
				got, err := s.Load(id)
				require.NoError(t, err, "other sessions load")
				assert.Equal(t, snaps[id], got)
			}
			// A reopened store still works and the damaged one can go.
			s2, err := OpenStore(filepath.Dir(filepath.Dir(path)), testFP, StoreOptions{})
			require.NoError(t, err)
			require.NoError(t, s2.Check("a"))
			require.NoError(t, s2.Delete("b"))
			ids, err := s2.List()
			require.NoError(t, err)
			assert.Equal(t, []string{"a", "c"}, ids)
		})
	}

	t.Run("block file", func(t *testing.T) {
		for _, off := range []int{0, 12, blobHeader + 3, -1} {
			s, _ := setup(t)
			corruptFile(t, blobPath(s.Blobs(), snaps["a"].Blocks[1]), off)
			err := s.Check("a")
			require.ErrorIs(t, err, ErrCorrupt)
			assert.Contains(t, err.Error(), `session "a": block 1`)
			assert.NoError(t, s.Check("b"))
		}
		s, _ := setup(t)
		p := blobPath(s.Blobs(), snaps["a"].Blocks[2])
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(p, data[:len(data)-7], 0o644))
		err = s.Check("a")
		require.ErrorIs(t, err, ErrCorrupt)
		assert.Contains(t, err.Error(), "block 2")
		require.NoError(t, os.Remove(p))
		assert.ErrorIs(t, s.Check("a"), ErrNotFound)
		require.NoError(t, s.Delete("a"))
	})
}

// TestSaveRestore saves a session through the cache, "restarts" (a new
// pool, cache and store over the same directory) and restores it.
func TestSaveRestore(t *testing.T) {
	const bb = 96
	dir := t.TempDir()
	salt := TenantSalt([]byte("k"), "t1")
	st, err := OpenStore(dir, testFP, StoreOptions{})
	require.NoError(t, err)
	f := newFixture(t, 8, bb, Config{Disk: st.Blobs(), DiskBytes: 4 * bb})
	prompt := seqTokens(4, 11)
	var tb Table
	require.NoError(t, f.prefill(t, salt, &tb, prompt))
	require.NoError(t, f.c.Save(st, "s1", salt, prompt, &tb, []byte("runtime state")))
	assert.Error(t, f.c.Save(st, "s1", salt, prompt[:3], &tb, nil), "fewer tokens than the table")
	tb.Release(f.p)

	st2, err := OpenStore(dir, testFP, StoreOptions{})
	require.NoError(t, err)
	f2 := newFixture(t, 8, bb, Config{Disk: st2.Blobs(), DiskBytes: 4 * bb})
	snap, err := st2.Load("s1")
	require.NoError(t, err)
	assert.Equal(t, prompt, snap.Tokens)
	assert.Equal(t, []byte("runtime state"), snap.Meta)
	assert.Equal(t, 8, f2.p.Free(), "Load touches no block")

	_, err = f2.c.Restore(Salt{}, snap)
	assert.ErrorIs(t, err, ErrCorrupt, "another tenant's salt")
	assert.Equal(t, 8, f2.p.Free())

	rt, err := f2.c.Restore(salt, snap)
	require.NoError(t, err)
	assert.Equal(t, 11, rt.Len)
	f2.check(t, salt, rt, prompt)
	// The full blocks are now indexed: a new session of the tenant shares them.
	m := f2.c.Match(salt, prompt)
	assert.Equal(t, rt.Blocks[:2], m.Blocks)
	m.Release(f2.p)
	// Appending works (the partial block is private).
	require.NoError(t, f2.prefill(t, salt, rt, append(append([]int32(nil), prompt...), 1)))
	rt.Release(f2.p)

	// A missing block file fails the restore, naming the block.
	require.NoError(t, os.Remove(blobPath(st2.Blobs(), snap.Blocks[2])))
	f3 := newFixture(t, 8, bb, Config{Disk: st2.Blobs()})
	_, err = f3.c.Restore(salt, snap)
	require.ErrorIs(t, err, ErrNotFound)
	assert.Contains(t, err.Error(), "block 2")
	assert.Equal(t, 8, f3.p.Free(), "a failed restore holds no block")
}

// faultFS fails the nth call of one operation.
type faultFS struct {
	OSFS
	mu    sync.Mutex
	op    string
	n     int
	count int
	hit   bool
}

var errInjected = errors.New("injected fault")

func (f *faultFS) fail(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if op != f.op {
		return nil
	}
	f.count++
	if f.count == f.n {
		f.hit = true
		return fmt.Errorf("%s: %w", op, errInjected)
	}
	return nil
}

func (f *faultFS) CreateTemp(dir, pattern string) (File, error) {
	if err := f.fail("create"); err != nil {
		return nil, err
	}
	fl, err := f.OSFS.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: fl, fs: f}, nil
}

func (f *faultFS) Rename(o, n string) error {
	if err := f.fail("rename"); err != nil {
		return err
	}
	return f.OSFS.Rename(o, n)
}

func (f *faultFS) SyncDir(d string) error {
	if err := f.fail("syncdir"); err != nil {
		return err
	}
	return f.OSFS.SyncDir(d)
}

func (f *faultFS) MkdirAll(d string) error {
	if err := f.fail("mkdir"); err != nil {
		return err
	}
	return f.OSFS.MkdirAll(d)
}

type faultFile struct {
	File
	fs *faultFS
}

func (f *faultFile) Write(p []byte) (int, error) {
	if err := f.fs.fail("write"); err != nil {
		return 0, err // as a full disk would
	}
	return f.File.Write(p)
}

func (f *faultFile) Sync() error {
	if err := f.fs.fail("sync"); err != nil {
		return err
	}
	return f.File.Sync()
}

// TestWriteFaults fails every write, sync, rename, ... of a Save in turn:
// each failing Save returns the error, the session loads its previous or
// new snapshot complete, other sessions are untouched, no temporary file
// is left, and the block store holds exactly the blocks snapshots hold.
func TestWriteFaults(t *testing.T) {
	const bb = 64
	for _, op := range []string{"create", "write", "sync", "rename", "syncdir", "mkdir"} {
		t.Run(op, func(t *testing.T) {
			dir := t.TempDir()
			ffs := &faultFS{}
			s, err := OpenStore(dir, testFP, StoreOptions{FS: ffs})
			require.NoError(t, err)
			old := testSnapshot(seqTokens(1, 6), "old")
			other := testSnapshot(seqTokens(2, 6), "other")
			saveTest(t, s, "s", old, bb)
			saveTest(t, s, "o", other, bb)
			next := testSnapshot(append(seqTokens(1, 4), seqTokens(9, 7)...), "new")
			failures := 0
			for n := 1; ; n++ {
				ffs.mu.Lock()
				ffs.op, ffs.n, ffs.count, ffs.hit = op, n, 0, false
				ffs.mu.Unlock()
				err := s.Save("s", next, patternSource{next.Blocks, bb})
				ffs.mu.Lock()
				hit := ffs.hit
				ffs.op = ""
				ffs.mu.Unlock()
				if !hit {
					require.NoError(t, err)
					break
				}
				failures++
				require.ErrorIs(t, err, errInjected)
				assert.Contains(t, err.Error(), `session "s"`)
				got, lerr := s.Load("s")
				require.NoError(t, lerr)
				if op != "syncdir" {
					assert.Equal(t, old, got, "the previous snapshot is intact")
				} else {
					assert.Contains(t, []string{"old", "new"}, string(got.Meta))
				}
				require.NoError(t, s.Check("s"))
				require.NoError(t, s.Check("o"))
				assertNoTemps(t, dir)
				assertBlobsHeld(t, s)
				// Put the old one back for the next round.
				if string(got.Meta) != "old" {
					saveTest(t, s, "s", old, bb)
				}
			}
			assert.Positive(t, failures, "the fault was reached")
			got, err := s.Load("s")
			require.NoError(t, err)
			assert.Equal(t, next, got)
			assertBlobsHeld(t, s)
			require.NoError(t, s.Check("o"))
		})
	}
}

func assertNoTemps(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		require.NoError(t, err)
		assert.False(t, strings.HasPrefix(d.Name(), tmpPrefix), "temporary file left: %s", p)
		return nil
	})
}

// assertBlobsHeld checks that the block store holds exactly the blocks of
// the stored snapshots, each with one reference per snapshot.
func assertBlobsHeld(t *testing.T, s *Store) {
	t.Helper()
	want := map[Hash]int{}
	ids, err := s.List()
	require.NoError(t, err)
	for _, id := range ids {
		sn, err := s.Load(id)
		require.NoError(t, err)
		for _, h := range sn.Blocks {
			want[h]++
		}
	}
	s.blobs.mu.Lock()
	defer s.blobs.mu.Unlock()
	got := map[Hash]int{}
	for h, b := range s.blobs.known {
		got[h] = b.refs
	}
	assert.Equal(t, want, got)
}

const crashEnv = "MNEMO_KVCACHE_CRASH_DIR"

// crashSnapshot is version v of session k: it keeps a 2-block prefix and
// changes the rest, so versions share some blocks and not others.
func crashSnapshot(k, v int) *Snapshot {
	tokens := append(seqTokens(k, 8), seqTokens(1000*k+v, 1+v%9)...)
	return testSnapshot(tokens, fmt.Sprintf("%d %d", k, v))
}

const crashBB = 32 << 10

// crashChild is the child process: it saves the sessions in turn, each
// with the next version, and prints "k v" after each Save returns.
func crashChild(dir string) {
	s, err := OpenStore(dir, testFP, StoreOptions{})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	ver := map[int]int{}
	for k := range 3 {
		if sn, err := s.Load(fmt.Sprint("s", k)); err == nil {
			var kk, v int
			fmt.Sscanf(string(sn.Meta), "%d %d", &kk, &v)
			ver[k] = v
		}
	}
	deadline := time.Now().Add(20 * time.Second) // never outlive a lost parent
	for i := 0; time.Now().Before(deadline); i++ {
		k := i % 3
		ver[k]++
		sn := crashSnapshot(k, ver[k])
		if err := s.Save(fmt.Sprint("s", k), sn, patternSource{sn.Blocks, crashBB}); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println(k, ver[k])
	}
	os.Exit(0)
}

// TestCrashConsistency kills a child process that saves snapshots in a
// loop with SIGKILL at random points, a few times over the same store:
// afterwards every session loads its last acknowledged state or the one
// being written, complete, with all its blocks.
func TestCrashConsistency(t *testing.T) {
	if dir := os.Getenv(crashEnv); dir != "" {
		crashChild(dir)
		return
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	acked := map[int]int{}
	kills := 4
	if testing.Short() {
		kills = 2
	}
	for round := range kills {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashConsistency$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Let it save a random number of times, then kill it.
		target := 3 + rng.IntN(20)
		seen := 0
		for line := range lines {
			require.False(t, strings.HasPrefix(line, "error"), line)
			f := strings.Fields(line)
			if len(f) != 2 {
				continue
			}
			k, _ := strconv.Atoi(f[0])
			v, _ := strconv.Atoi(f[1])
			acked[k] = v
			if seen++; seen == target {
				time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
				require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
				break
			}
		}
		for line := range lines { // acknowledged before the kill landed
			if f := strings.Fields(line); len(f) == 2 {
				k, _ := strconv.Atoi(f[0])
				v, _ := strconv.Atoi(f[1])
				acked[k] = v
			}
		}
		cmd.Wait()
		t.Logf("round %d: killed after %d acknowledged saves; acknowledged versions %v", round, seen, acked)

		s, err := OpenStore(dir, testFP, StoreOptions{})
		require.NoError(t, err, "round %d", round)
		for k := range 3 {
			id := fmt.Sprint("s", k)
			sn, err := s.Load(id)
			if acked[k] == 0 && errors.Is(err, ErrNotFound) {
				continue
			}
			require.NoError(t, err, "round %d session %d", round, k)
			var kk, v int
			_, err = fmt.Sscanf(string(sn.Meta), "%d %d", &kk, &v)
			require.NoError(t, err)
			assert.Equal(t, k, kk)
			assert.Contains(t, []int{acked[k], acked[k] + 1}, v, "round %d session %d: previous or new state", round, k)
			assert.Equal(t, crashSnapshot(k, v), sn)
			require.NoError(t, s.Check(id), "round %d: every block present and intact", round)
		}
		assertNoTemps(t, dir)
		assertBlobsHeld(t, s)
	}
}

// TestBlobsConcurrent puts and releases the same few blocks from many
// goroutines, durable or not: afterwards exactly the held blocks have
// files, each intact.
func TestBlobsConcurrent(t *testing.T) {
	const bb = 64
	b, err := OpenBlobs(t.TempDir(), nil)
	require.NoError(t, err)
	hs := BlockHashes(testFP, Salt{}, seqTokens(1, 4*testBT))
	var wg sync.WaitGroup
	held := make([]map[Hash]int, 6)
	for w := range held {
		held[w] = map[Hash]int{}
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 3))
			for range 40 {
				h := hs[rng.IntN(len(hs))]
				if held[w][h] > 0 && rng.IntN(2) == 0 {
					b.Release(h)
					held[w][h]--
					continue
				}
				durable := rng.IntN(2) == 0
				err := b.put(h, pattern(h, bb), durable)
				if !durable && errors.Is(err, errBusyBlock) {
					continue // the cache tier never waits for another writer
				}
				if !assert.NoError(t, err) {
					return
				}
				held[w][h]++
			}
		})
	}
	wg.Wait()
	want := map[Hash]int{}
	for _, m := range held {
		for h, n := range m {
			if n > 0 {
				want[h] += n
			}
		}
	}
	for _, h := range hs {
		assert.Equal(t, want[h], b.Refs(h))
		got := make([]byte, bb)
		if want[h] > 0 {
			require.NoError(t, b.Get(h, got))
			assert.Equal(t, pattern(h, bb), got)
		} else {
			assert.ErrorIs(t, b.Get(h, got), ErrNotFound)
		}
	}
	assertNoTemps(t, b.dir)
}

// TestSaveRate: with WriteBytesPerSec, Save paces its block writes (it
// sleeps after each block until the bytes so far would take at that rate:
// the fake sleep does not pass time, so the last wait is the longest and
// at most the whole); without, it never sleeps.
func TestSaveRate(t *testing.T) {
	const bb = 4096
	_, err := OpenStore(t.TempDir(), testFP, StoreOptions{WriteBytesPerSec: -1})
	require.Error(t, err)
	for _, rate := range []int64{0, 1 << 20} {
		t.Run(fmt.Sprint("rate=", rate), func(t *testing.T) {
			s, err := OpenStore(t.TempDir(), testFP, StoreOptions{WriteBytesPerSec: rate})
			require.NoError(t, err)
			var longest time.Duration
			calls := 0
			s.sleep = func(d time.Duration) { calls++; longest = max(longest, d) }
			snap := testSnapshot(seqTokens(1, 10*testBT), "m")
			saveTest(t, s, "s", snap, bb)
			require.NoError(t, s.Check("s"))
			if rate == 0 {
				assert.Zero(t, calls)
				return
			}
			assert.Equal(t, len(snap.Blocks), calls, "a pause after each block written")
			assert.Positive(t, longest)
			assert.LessOrEqual(t, longest, time.Duration(float64(len(snap.Blocks)*bb)/float64(rate)*float64(time.Second)))
		})
	}
}

// gateFS holds every block-file read until open is closed, signalling
// entered at the first.
type gateFS struct {
	OSFS
	once    sync.Once
	entered chan struct{}
	open    chan struct{}
}

func (g *gateFS) ReadFile(name string) ([]byte, error) {
	if strings.HasSuffix(name, blobExt) {
		g.once.Do(func() { close(g.entered) })
		<-g.open
	}
	return g.OSFS.ReadFile(name)
}

// TestRestoreReadsOffLock: Restore reads block files without holding the
// pool lock, so the steps of other sessions (which take it) go on while a
// restored session's blocks come from disk.
func TestRestoreReadsOffLock(t *testing.T) {
	const bb = 96
	dir := t.TempDir()
	salt := TenantSalt([]byte("k"), "t1")
	st, err := OpenStore(dir, testFP, StoreOptions{})
	require.NoError(t, err)
	f := newFixture(t, 8, bb, Config{Disk: st.Blobs()})
	prompt := seqTokens(4, 11)
	var tb Table
	require.NoError(t, f.prefill(t, salt, &tb, prompt))
	require.NoError(t, f.c.Save(st, "s1", salt, prompt, &tb, nil))
	tb.Release(f.p)

	g := &gateFS{entered: make(chan struct{}), open: make(chan struct{})}
	st2, err := OpenStore(dir, testFP, StoreOptions{FS: g})
	require.NoError(t, err)
	f2 := newFixture(t, 8, bb, Config{Disk: st2.Blobs()})
	snap, err := st2.Load("s1")
	require.NoError(t, err)
	type result struct {
		t   *Table
		err error
	}
	done := make(chan result, 1)
	go func() {
		rt, err := f2.c.Restore(salt, snap)
		done <- result{rt, err}
	}()
	<-g.entered
	stats := make(chan Stats, 1)
	go func() { stats <- f2.c.Stats() }() // takes the pool lock
	select {
	case s := <-stats:
		assert.Equal(t, 8, s.Free, "nothing allocated while reading")
	case <-time.After(30 * time.Second):
		t.Fatal("the pool lock is held while block files are read")
	}
	close(g.open)
	r := <-done
	require.NoError(t, r.err)
	assert.Equal(t, 11, r.t.Len)
	f2.check(t, salt, r.t, prompt)
	r.t.Release(f2.p)
}
