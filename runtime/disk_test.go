package runtime_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/backend/cpu"
	"github.com/mnemo-ai/mnemo/engine"
	"github.com/mnemo-ai/mnemo/engine/chat"
	"github.com/mnemo-ai/mnemo/engine/model"
	"github.com/mnemo-ai/mnemo/engine/sample"
	"github.com/mnemo-ai/mnemo/engine/synth"
	"github.com/mnemo-ai/mnemo/engine/tokenizer"
	"github.com/mnemo-ai/mnemo/kvcache"
	"github.com/mnemo-ai/mnemo/runtime"
)

// writeTiny writes synth.Tiny("llama") with seed to a temporary file.
func writeTiny(t *testing.T, seed uint64) string {
	t.Helper()
	spec := synth.Tiny("llama")
	spec.Seed = seed
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	require.NoError(t, synth.WriteFile(path, spec))
	return path
}

// process is one "process": the model at path opened on the CPU backend
// with a DiskStore in dir and a runtime over both.
type process struct {
	m     *recorder
	store *runtime.DiskStore
	rt    *runtime.Runtime
	close func()
}

var testSecret = []byte("test secret")

// startProcess opens the process; chat gives the runtime the model's
// tokenizer (then an end token may cut a generation short).
func startProcess(t *testing.T, path, dir, identity string, chat ...bool) *process {
	t.Helper()
	src, err := model.Open(path)
	require.NoError(t, err)
	be, err := cpu.New(backend.Options{Threads: 1})
	require.NoError(t, err)
	m, err := engine.New(src, be, engine.Options{Weights: "f32", BlockTokens: 4, KVTokens: 512, MaxSeqs: 16,
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	kv := m.KV()
	fp := kvcache.NewFingerprint([]byte(identity), []byte("tiny llama"), kv.DType.String(), kv.BlockTokens)
	store, err := runtime.OpenDiskStore(dir, runtime.DiskOptions{Fingerprint: fp, KV: kv, Secret: testSecret,
		HostBytes: 1 << 20})
	require.NoError(t, err)
	var tok *tokenizer.Tokenizer
	if len(chat) > 0 && chat[0] {
		tok, err = tokenizer.FromGGUF(src.(*model.GGUFSource).File())
		require.NoError(t, err)
	}
	rec := &recorder{Model: m}
	rt, err := runtime.New(rec, runtime.Options{Store: store, Fingerprint: store.FingerprintID(),
		Cache: store.Cache(), Secret: testSecret, MaxBatchTokens: 64, Tokenizer: tok})
	require.NoError(t, err)
	p := &process{m: rec, store: store, rt: rt}
	closed := false
	p.close = func() {
		if closed {
			return
		}
		closed = true
		assert.NoError(t, rt.Close())
		assert.Equal(t, kv.Pool.Blocks(), kv.Pool.Free(), "every block free or idle")
		assert.NoError(t, m.Close())
		assert.NoError(t, be.Close())
		assert.NoError(t, src.Close())
	}
	t.Cleanup(p.close)
	return p
}

var greedy = runtime.SessionOptions{Sampling: sample.Options{Temperature: 0}}

// TestDiskStoreRestart saves a session, "restarts" (a new model, store
// and runtime on the same directory) and requires the restored session to
// continue exactly like one that never stopped, prefilling only the new
// turn.
func TestDiskStoreRestart(t *testing.T) {
	path, dir := writeTiny(t, 1), t.TempDir()
	prompt, more := prompts(3)[2], []int32{40, 41, 42, 43, 44}

	p1 := startProcess(t, path, dir, "model-1")
	s, err := p1.rt.Open(t.Context(), "conv", greedy)
	require.NoError(t, err)
	require.NoError(t, s.Append(t.Context(), prompt))
	gen(t, s, 6)
	history := s.Tokens()
	ref, err := s.Fork(t.Context(), "ref")
	require.NoError(t, err)
	require.NoError(t, ref.Append(t.Context(), more))
	want := gen(t, ref, 8)
	require.NoError(t, ref.Close())
	require.NoError(t, s.Close()) // saves
	p1.close()

	p2 := startProcess(t, path, dir, "model-1")
	ids, err := p2.store.List()
	require.NoError(t, err)
	assert.Equal(t, []string{"conv", "ref"}, ids)
	s2, err := p2.rt.Open(t.Context(), "conv", greedy)
	require.NoError(t, err)
	assert.Equal(t, history, s2.Tokens())
	assert.Equal(t, len(history)-1, s2.Cached(), "all but the last generated token restored")
	require.NoError(t, s2.Append(t.Context(), more))
	assert.Equal(t, 1+len(more), p2.m.Fed(), "only the new turn (and the last reply token) prefilled")
	assert.Equal(t, want, gen(t, s2, 8))

	// Delete erases the snapshot; Open then starts empty.
	require.NoError(t, p2.rt.Delete(t.Context(), "conv"))
	_, err = p2.store.Peek("conv")
	assert.ErrorIs(t, err, runtime.ErrNotFound)
	s3, err := p2.rt.Open(t.Context(), "conv", greedy)
	require.NoError(t, err)
	assert.Zero(t, s3.Len())
}

// TestDiskStoreFingerprint saves under one model and opens under
// another: refused, naming what differs.
func TestDiskStoreFingerprint(t *testing.T) {
	dir := t.TempDir()
	p1 := startProcess(t, writeTiny(t, 1), dir, "model-1")
	s := open(t, p1.rt, "x")
	require.NoError(t, s.Append(t.Context(), prompts(2)[1]))
	require.NoError(t, s.Close())
	p1.close()

	p2 := startProcess(t, writeTiny(t, 2), dir, "model-2")
	_, err := p2.rt.Open(t.Context(), "x", runtime.SessionOptions{})
	require.Error(t, err)
	assert.ErrorIs(t, err, runtime.ErrFingerprint)
	assert.ErrorIs(t, err, kvcache.ErrFingerprint)
	assert.Contains(t, err.Error(), "model differs")
}

// TestPrefixSharing: sessions of one tenant with a common prompt compute
// it once; another tenant's session computes it again.
func TestPrefixSharing(t *testing.T) {
	p := startProcess(t, writeTiny(t, 1), t.TempDir(), "model-1")
	system := seqTokens(33, 5) // 8 full blocks and one token
	a := open(t, p.rt, "a")
	require.NoError(t, a.Append(t.Context(), append(append([]int32{}, system...), 60, 61)))
	fed := p.m.Fed()
	wantA := p.m.Last()
	b := open(t, p.rt, "b")
	require.NoError(t, b.Append(t.Context(), append(append([]int32{}, system...), 70, 71, 72)))
	assert.Equal(t, 33+3-32, p.m.Fed()-fed, "b reused a's 8 full blocks")
	assert.Equal(t, 32, b.Cached()-3-1)

	other, err := p.rt.Open(t.Context(), "c", runtime.SessionOptions{Tenant: "other"})
	require.NoError(t, err)
	fed = p.m.Fed()
	require.NoError(t, other.Append(t.Context(), append(append([]int32{}, system...), 60, 61)))
	assert.Equal(t, 35, p.m.Fed()-fed, "no sharing across tenants")
	assert.InDeltaSlice(t, wantA, p.m.Last(), 1e-4, "same tokens, same logits")
}

// TestSaveLiveSession snapshots a session that stays open, and Stat,
// Peek, Export and Import see it.
func TestSaveLiveSession(t *testing.T) {
	dir := t.TempDir()
	p := startProcess(t, writeTiny(t, 1), dir, "model-1")
	s := open(t, p.rt, "live")
	prompt := prompts(3)[2]
	n := len(prompt) // 14: 3 full blocks and a partial one
	require.NoError(t, s.Append(t.Context(), prompt))
	require.NoError(t, s.Save(t.Context()))
	require.NoError(t, s.Append(t.Context(), []int32{50, 51}))
	info, err := p.store.Stat("live")
	require.NoError(t, err)
	assert.Equal(t, n, info.Tokens)
	assert.Equal(t, n, info.Cached)
	assert.EqualValues(t, 4*p.store.BlockBytes(), info.Bytes)
	require.NoError(t, p.store.Check("live"))

	var exp bytes.Buffer
	require.NoError(t, p.store.Export("live", &exp))
	_, err = p.store.Import(exp.Bytes(), "")
	assert.ErrorIs(t, err, runtime.ErrExists)
	id, err := p.store.Import(exp.Bytes(), "copy")
	require.NoError(t, err)
	assert.Equal(t, "copy", id)
	c, err := p.rt.Open(t.Context(), "copy", greedy)
	require.NoError(t, err)
	assert.Equal(t, n, c.Cached())
	l, err := p.rt.Open(t.Context(), "live", greedy)
	require.NoError(t, err)
	assert.Same(t, s, l, "the live session, not the snapshot")
	fork, err := s.Fork(t.Context(), "fork")
	require.NoError(t, err)
	require.NoError(t, fork.Rewind(t.Context(), n))
	assert.Equal(t, gen(t, fork, 4), gen(t, c, 4), "the import continues like the original")
}

// TestImportChecks refuses damaged exports and other models' sessions.
func TestImportChecks(t *testing.T) {
	path := writeTiny(t, 1)
	p := startProcess(t, path, t.TempDir(), "model-1")
	s := open(t, p.rt, "s")
	require.NoError(t, s.Append(t.Context(), prompts(3)[2]))
	require.NoError(t, s.Save(t.Context()))
	var exp bytes.Buffer
	require.NoError(t, p.store.Export("s", &exp))
	good := exp.Bytes()

	for _, tt := range []struct {
		name string
		edit func([]byte) []byte
		msg  string
	}{
		{"flipped block byte", func(b []byte) []byte { b[len(b)-20] ^= 1; return b }, "checksum"},
		{"cut short", func(b []byte) []byte { return b[:len(b)-100] }, "checksum"},
		{"not an export", func(b []byte) []byte { return []byte("hello") }, "not a session export"},
		{"block checksum", func(b []byte) []byte {
			b[len(b)-20] ^= 1
			binary.LittleEndian.PutUint32(b[len(b)-4:], crc32c(b[:len(b)-4]))
			return b
		}, "block 3 checksum"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := p.store.Import(tt.edit(bytes.Clone(good)), "other")
			require.Error(t, err)
			assert.ErrorIs(t, err, runtime.ErrBadExport)
			assert.Contains(t, err.Error(), tt.msg)
		})
	}
	t.Run("another model", func(t *testing.T) {
		p2 := startProcess(t, path, t.TempDir(), "model-2")
		_, err := p2.store.Import(good, "")
		assert.ErrorIs(t, err, runtime.ErrFingerprint)
		assert.Contains(t, err.Error(), "model differs")
	})
	t.Run("hostile id", func(t *testing.T) {
		for _, id := range []string{"../x", "a/b", ".hidden", "x\x00"} {
			_, err := p.store.Import(good, id)
			assert.ErrorIs(t, err, runtime.ErrInvalidID, id)
		}
	})
}

func crc32c(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }

// TestChatSessionSurvivesRestart: the chat messages and the sampler state
// come back with the KV, and the next turn prefills only itself.
func TestChatSessionSurvivesRestart(t *testing.T) {
	path, dir := writeTiny(t, 1), t.TempDir()
	so := runtime.SessionOptions{Tenant: "t1", Sampling: sample.Options{Temperature: 1, Seed: 3, MaxTokens: 6}}
	user := func(text string) chat.Message { return chat.Message{Role: "user", Content: text} }
	p1 := startProcess(t, path, dir, "model-1", true)
	s, err := p1.rt.Open(t.Context(), "c", so)
	require.NoError(t, err)
	require.NoError(t, s.AppendMessages(t.Context(), user("hello there")))
	_, _, _, err = runtime.Collect(s.Generate(t.Context(), runtime.GenerateOptions{}))
	require.NoError(t, err)
	msgs := s.Messages()
	require.Len(t, msgs, 2)
	ref, err := s.Fork(t.Context(), "ref")
	require.NoError(t, err)
	require.NoError(t, ref.AppendMessages(t.Context(), user("and then")))
	_, want, _, err := runtime.Collect(ref.Generate(t.Context(), runtime.GenerateOptions{}))
	require.NoError(t, err)
	require.NoError(t, ref.Close())
	require.NoError(t, s.Close())
	p1.close()

	p2 := startProcess(t, path, dir, "model-1", true)
	st, err := p2.store.Peek("c")
	require.NoError(t, err)
	assert.Equal(t, "t1", st.Meta.Tenant)
	assert.Equal(t, msgs, st.Messages)
	s2, err := p2.rt.Open(t.Context(), "c", so)
	require.NoError(t, err)
	hist := s2.Len()
	require.NoError(t, s2.AppendMessages(t.Context(), user("and then")))
	assert.Less(t, p2.m.Fed(), s2.Len()-hist+8, "only the new turn prefilled")
	_, got, _, err := runtime.Collect(s2.Generate(t.Context(), runtime.GenerateOptions{}))
	require.NoError(t, err)
	assert.Equal(t, want, got)
}

// FuzzDecodeExport: the export decoder never panics, and what it accepts
// re-encodes to the same snapshot.
func FuzzDecodeExport(f *testing.F) {
	f.Add([]byte("MNEMOEXP"))
	f.Add([]byte{})
	fp := kvcache.NewFingerprint([]byte("m"), []byte("c"), "f32", 4)
	snap := &kvcache.Snapshot{Fingerprint: fp, Tokens: []int32{1, 2, 3, 4, 5},
		Blocks: kvcache.BlockHashes(fp, kvcache.Salt{}, []int32{1, 2, 3, 4, 5}), Meta: []byte(`{"version":1}`)}
	enc := kvcache.EncodeSnapshot("s", snap)
	var b bytes.Buffer
	b.WriteString("MNEMOEXP")
	_ = binary.Write(&b, binary.LittleEndian, uint16(1))
	_ = binary.Write(&b, binary.LittleEndian, uint32(len(enc)))
	b.Write(enc)
	_ = binary.Write(&b, binary.LittleEndian, [2]uint32{8, 2})
	for range 2 {
		blk := []byte("12345678")
		b.Write(blk)
		_ = binary.Write(&b, binary.LittleEndian, crc32c(blk))
	}
	_ = binary.Write(&b, binary.LittleEndian, crc32c(b.Bytes()))
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := runtime.DecodeExport(data)
		if err != nil {
			assert.ErrorIs(t, err, runtime.ErrBadExport)
			return
		}
		assert.Len(t, e.Blocks, len(e.Snapshot.Blocks))
		assert.NotEmpty(t, kvcache.EncodeSnapshot(e.ID, e.Snapshot))
	})
}

// FuzzDecodeMeta: snapshot metadata decoding never panics, and accepted
// metadata has no negative token.
func FuzzDecodeMeta(f *testing.F) {
	f.Add([]byte(`{"version":1,"tenant":"t","messages":[{"role":"user","content":"aGk="}],"tail":[5,6]}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"version":1,"tail":[-1]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := runtime.DecodeMeta(data)
		if err != nil {
			return
		}
		for _, id := range st.Tokens {
			assert.GreaterOrEqual(t, id, int32(0))
		}
	})
}

// TestSaveDuringGeneration snapshots a session while it generates: the
// generation is unaffected and every snapshot is whole.
func TestSaveDuringGeneration(t *testing.T) {
	p := startProcess(t, writeTiny(t, 1), t.TempDir(), "model-1")
	prompt := prompts(4)[3]
	ref := open(t, p.rt, "ref")
	require.NoError(t, ref.Append(t.Context(), prompt))
	want := gen(t, ref, 40)

	s := open(t, p.rt, "s")
	require.NoError(t, s.Append(t.Context(), prompt))
	done := make(chan []int32)
	go func() {
		ids, _, _, _ := runtime.Collect(s.Generate(t.Context(), runtime.GenerateOptions{MaxTokens: 40}))
		done <- ids
	}()
	saves := 0
	for finished := false; !finished; {
		select {
		case ids := <-done:
			assert.Equal(t, want, ids)
			finished = true
		default:
			require.NoError(t, s.Save(t.Context()))
			require.NoError(t, p.store.Check("s"))
			saves++
		}
	}
	assert.Positive(t, saves)
	st, err := p.store.Peek("s")
	require.NoError(t, err)
	assert.Equal(t, s.Tokens()[:len(st.Tokens)], st.Tokens, "a snapshot holds a prefix of the history")
}

// busyProbe records, at every forward step, whether the pacer is busy.
type busyProbe struct {
	engine.Model
	p     *kvcache.Pacer
	steps []bool
}

func (b *busyProbe) Forward(ctx context.Context, seqs []*engine.Seq) ([]engine.Logits, error) {
	b.steps = append(b.steps, b.p.Busy()) // the loop calls Forward from one goroutine
	return b.Model.Forward(ctx, seqs)
}

// TestRuntimeMarksPacerBusy: the runtime marks its DiskStore's pacer busy
// for every step it runs, so that snapshot writes yield to the model, and
// idle when it has nothing to run, so that they go at full speed.
func TestRuntimeMarksPacerBusy(t *testing.T) {
	src, err := model.Open(writeTiny(t, 1))
	require.NoError(t, err)
	defer src.Close()
	be, err := cpu.New(backend.Options{Threads: 1})
	require.NoError(t, err)
	defer be.Close()
	m, err := engine.New(src, be, engine.Options{Weights: "f32", BlockTokens: 4, KVTokens: 256, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer m.Close()
	kv := m.KV()
	fp := kvcache.NewFingerprint([]byte("m"), []byte("tiny llama"), kv.DType.String(), kv.BlockTokens)
	_, err = runtime.OpenDiskStore(t.TempDir(), runtime.DiskOptions{Fingerprint: fp, KV: kv, BackgroundShare: 1.5})
	assert.Error(t, err, "a share above 1 is refused")
	store, err := runtime.OpenDiskStore(t.TempDir(), runtime.DiskOptions{Fingerprint: fp, KV: kv, Secret: testSecret})
	require.NoError(t, err)
	pacer := store.Pacer()
	require.NotNil(t, pacer)
	assert.Equal(t, kvcache.DefaultBackgroundShare, pacer.Share())
	probe := &busyProbe{Model: m, p: pacer}
	rt, err := runtime.New(probe, runtime.Options{Store: store, Fingerprint: store.FingerprintID(), Secret: testSecret})
	require.NoError(t, err)
	s, err := rt.Open(t.Context(), "a", greedy)
	require.NoError(t, err)
	require.NoError(t, s.Append(t.Context(), prompts(2)[1]))
	gen(t, s, 5)
	require.Eventually(t, func() bool { return !pacer.Busy() }, 10*time.Second, time.Millisecond, "idle after the work")
	require.NoError(t, s.Close())
	require.NoError(t, rt.Close())
	assert.False(t, pacer.Busy(), "idle after Close")
	require.NotEmpty(t, probe.steps)
	for i, busy := range probe.steps {
		assert.True(t, busy, "step %d ran with the pacer idle", i)
	}
}

// TestLazyRestore: after a restart, Open reads the session's state but no
// KV block; the first operation restores the blocks (prefilling only the
// new tokens); a session closed unused keeps its stored KV as it was.
func TestLazyRestore(t *testing.T) {
	path, dir := writeTiny(t, 1), t.TempDir()
	p1 := startProcess(t, path, dir, "model-1")
	for _, id := range []string{"used", "unused"} {
		s := open(t, p1.rt, id)
		require.NoError(t, s.Append(t.Context(), prompts(4)[3]))
		gen(t, s, 5)
		require.NoError(t, s.Close())
	}
	p1.close()
	snapFiles := func() map[string][]byte {
		out := map[string][]byte{}
		names, err := filepath.Glob(filepath.Join(dir, "snapshots", "*"))
		require.NoError(t, err)
		for _, n := range names {
			out[n], err = os.ReadFile(n)
			require.NoError(t, err)
		}
		return out
	}
	before := snapFiles()

	p2 := startProcess(t, path, dir, "model-1")
	kv := p2.m.KV()
	free := kv.Pool.Free()
	s, err := p2.rt.Open(t.Context(), "used", greedy)
	require.NoError(t, err)
	u, err := p2.rt.Open(t.Context(), "unused", greedy)
	require.NoError(t, err)
	assert.Equal(t, free, kv.Pool.Free(), "Open reads no block")
	assert.Equal(t, s.Len()-1, s.Cached(), "Cached counts the stored blocks to be restored")
	require.NoError(t, s.Append(t.Context(), []int32{40, 41}))
	assert.Less(t, kv.Pool.Free(), free, "the first operation restored the blocks")
	assert.Equal(t, 3, p2.m.Fed(), "only the last reply token and the new ones prefilled")
	gen(t, s, 2)

	require.NoError(t, u.Close())
	require.NoError(t, s.Save(t.Context()))
	p2.close()
	after := snapFiles()
	for name, data := range before {
		if after[name] != nil && bytes.Equal(after[name], data) {
			continue
		}
		id, _, err := kvcache.DecodeSnapshot(after[name])
		require.NoError(t, err, name)
		assert.Equal(t, "used", id, "only the used session's snapshot changed")
	}

	// The unused one still restores all its KV.
	p3 := startProcess(t, path, dir, "model-1")
	u3, err := p3.rt.Open(t.Context(), "unused", greedy)
	require.NoError(t, err)
	require.NoError(t, u3.Append(t.Context(), []int32{40}))
	assert.Equal(t, 2, p3.m.Fed(), "the stored KV survived a close without use")
}

// TestLazyRestoreCorruptBlock: a damaged block file lets Open succeed
// (the state is intact), fails the first operation with an error naming
// the session and the block, leaves other sessions alone, and the damaged
// session can still be deleted.
func TestLazyRestoreCorruptBlock(t *testing.T) {
	path, dir := writeTiny(t, 1), t.TempDir()
	p1 := startProcess(t, path, dir, "model-1")
	s := open(t, p1.rt, "bad")
	require.NoError(t, s.Append(t.Context(), prompts(4)[3]))
	require.NoError(t, s.Close())
	good := open(t, p1.rt, "good")
	require.NoError(t, good.Append(t.Context(), seqTokens(9, 50)))
	require.NoError(t, good.Close())
	p1.close()
	bad := storedSnapshot(t, dir, "bad")
	blk := filepath.Join(dir, "blocks", bad.Blocks[1].String()[:2], bad.Blocks[1].String()+".blk")
	data, err := os.ReadFile(blk)
	require.NoError(t, err)
	data[len(data)/2] ^= 0x40
	require.NoError(t, os.WriteFile(blk, data, 0o644))

	p2 := startProcess(t, path, dir, "model-1")
	kv := p2.m.KV()
	s2, err := p2.rt.Open(t.Context(), "bad", greedy)
	require.NoError(t, err)
	err = s2.Append(t.Context(), []int32{7})
	require.ErrorIs(t, err, kvcache.ErrCorrupt)
	assert.Contains(t, err.Error(), `"bad"`)
	assert.Contains(t, err.Error(), "block 1")
	assert.Equal(t, kv.Pool.Blocks(), kv.Pool.Free(), "a failed restore holds no block")
	err = s2.Append(t.Context(), []int32{7})
	assert.ErrorIs(t, err, kvcache.ErrCorrupt, "still refused, not silently emptied")

	g, err := p2.rt.Open(t.Context(), "good", greedy)
	require.NoError(t, err)
	require.NoError(t, g.Append(t.Context(), []int32{7}))
	assert.Equal(t, 1, p2.m.Fed(), "the other session restores fine: only the new token prefilled")

	require.NoError(t, p2.rt.Delete(t.Context(), "bad"))
	_, err = p2.store.Peek("bad")
	assert.ErrorIs(t, err, runtime.ErrNotFound)
}

// storedSnapshot decodes session id's snapshot file in dir.
func storedSnapshot(t *testing.T, dir, id string) *kvcache.Snapshot {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "snapshots", "*"))
	require.NoError(t, err)
	for _, n := range names {
		data, err := os.ReadFile(n)
		require.NoError(t, err)
		if got, snap, err := kvcache.DecodeSnapshot(data); err == nil && got == id {
			return snap
		}
	}
	t.Fatalf("no snapshot of %q in %s", id, dir)
	return nil
}
