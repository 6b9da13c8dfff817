package cli

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mnemo-ai/mnemo/engine/model"
	"github.com/mnemo-ai/mnemo/kvcache"
	"github.com/mnemo-ai/mnemo/runtime"
)

// The state directory holds a secret (the tenant salt key, created on
// first use) and one subdirectory per model fingerprint (the first 16 hex
// digits of its hash), each a runtime.DiskStore with a model.json that
// describes the model for the sessions commands:
//
//	STATE/secret
//	STATE/<fingerprint>/model.json
//	STATE/<fingerprint>/snapshots/, blocks/
const (
	secretFile    = "secret"
	modelInfoFile = "model.json"
	// sessionBlockTokens is the KV block size of session runs (the
	// engine's default); it is part of the fingerprint.
	sessionBlockTokens = 16
)

// stateDirFlag registers --state-dir.
func stateDirFlag(fs *flag.FlagSet) *string {
	return fs.String("state-dir", "", "session state directory (default $XDG_STATE_HOME/mnemo, else ~/.local/state/mnemo)")
}

// resolveStateDir returns dir, else the default.
func resolveStateDir(env Env, dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	getenv := env.Getenv
	if getenv == nil {
		getenv = osGetenv
	}
	if x := getenv("XDG_STATE_HOME"); x != "" {
		return filepath.Join(x, "mnemo"), nil
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "state", "mnemo"), nil
	}
	return "", usagef("no state directory: set --state-dir, $XDG_STATE_HOME or $HOME")
}

// loadSecret reads the state directory's secret, creating it (32 random
// bytes, mode 0600) the first time.
func loadSecret(dir string) ([]byte, error) {
	path := filepath.Join(dir, secretFile)
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) < 16 {
			return nil, fmt.Errorf("secret %s: %d bytes, want at least 16", path, len(b))
		}
		return b, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read secret: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	f, err := os.CreateTemp(dir, ".tmp-secret-")
	if err != nil {
		return nil, fmt.Errorf("write secret: %w", err)
	}
	_, werr := f.Write(b)
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		os.Remove(f.Name())
		return nil, fmt.Errorf("write secret: %w", err)
	}
	// Link, not rename: a concurrent first run keeps the first secret.
	if err := os.Link(f.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		os.Remove(f.Name())
		return nil, fmt.Errorf("write secret: %w", err)
	}
	os.Remove(f.Name())
	return loadSecret(dir)
}

// errStoreBusy is returned when another process uses a model's state
// directory.
var errStoreBusy = errors.New("session store in use by another mnemo process")

// modelInfo is model.json: what the sessions commands show of a model and
// need to open its store without loading it.
type modelInfo struct {
	Name        string `json:"name"`
	Size        int64  `json:"size"`
	Weights     string `json:"weights"`
	KV          string `json:"kv"`
	BlockTokens int    `json:"block_tokens"`
	BlockBytes  int    `json:"block_bytes"`
	ModelHash   string `json:"model_hash"`
	ConfigHash  string `json:"config_hash"`
}

func (mi *modelInfo) fingerprint() (kvcache.Fingerprint, error) {
	fp := kvcache.Fingerprint{KVType: mi.KV, BlockTokens: mi.BlockTokens}
	for _, h := range []struct {
		s   string
		dst *kvcache.Hash
	}{{mi.ModelHash, &fp.Model}, {mi.ConfigHash, &fp.Config}} {
		b, err := hex.DecodeString(h.s)
		if err != nil || len(b) != len(h.dst) {
			return fp, fmt.Errorf("bad hash %q", h.s)
		}
		copy(h.dst[:], b)
	}
	if fp.BlockTokens < 1 || fp.BlockTokens > 1<<20 || len(fp.KVType) > 255 {
		return fp, fmt.Errorf("bad block size %d or KV type %q", fp.BlockTokens, fp.KVType)
	}
	return fp, nil
}

// fpDir is the subdirectory name of a fingerprint.
func fpDir(fp kvcache.Fingerprint) string { return fp.Sum().String()[:16] }

// identitySamples and identityChunk bound the bytes hashed for a model
// file's identity: the head (header, metadata, tensor table and the first
// weights) plus evenly spread chunks.
const (
	identityHead    = 4 << 20
	identitySamples = 16
	identityChunk   = 64 << 10
)

// fileIdentity returns bytes that change when the model file does: its
// base name, size and a SHA-256 of its head and of chunks spread over it.
func fileIdentity(path string) ([]byte, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	size := st.Size()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, min(size, identityHead))); err != nil {
		return nil, 0, fmt.Errorf("hash %s: %w", path, err)
	}
	if size > identityHead {
		step := (size - identityHead) / identitySamples
		for i := range int64(identitySamples) {
			off := identityHead + i*step
			if _, err := io.Copy(h, io.NewSectionReader(f, off, min(identityChunk, size-off))); err != nil {
				return nil, 0, fmt.Errorf("hash %s: %w", path, err)
			}
		}
	}
	id := fmt.Appendf(nil, "name=%s\nsize=%d\nsha256-sampled=%x\n", filepath.Base(path), size, h.Sum(nil))
	return id, size, nil
}

// sessionFingerprint derives the fingerprint of path as the flags load it:
// the file's identity; the configuration, backend, weight format and
// tokenizer; the KV type and block size.
func sessionFingerprint(path string, src model.Source, mf *modelFlags, tokPath string) (kvcache.Fingerprint, modelInfo, error) {
	id, size, err := fileIdentity(path)
	if err != nil {
		return kvcache.Fingerprint{}, modelInfo{}, err
	}
	cfg := src.Config()
	conf := fmt.Appendf(nil, "config=%+v\nbackend=%s\nweights=%s\n", cfg, mf.backend, mf.weights)
	if tokPath != "" {
		tid, _, err := fileIdentity(tokPath)
		if err != nil {
			return kvcache.Fingerprint{}, modelInfo{}, err
		}
		conf = append(conf, tid...)
	}
	fp := kvcache.NewFingerprint(id, conf, mf.kv, sessionBlockTokens)
	elem := map[string]int{"bf16": 2, "fp8": 1}[mf.kv]
	if elem == 0 {
		elem = 4
	}
	mi := modelInfo{Name: filepath.Base(path), Size: size, Weights: mf.weights, KV: mf.kv,
		BlockTokens: sessionBlockTokens, BlockBytes: 2 * cfg.Layers * cfg.KVHeads * cfg.HeadDim * elem * sessionBlockTokens,
		ModelHash: fp.Model.String(), ConfigHash: fp.Config.String()}
	return fp, mi, nil
}

// writeModelInfo writes dir/model.json (once: it never changes for a
// fingerprint).
func writeModelInfo(dir string, mi modelInfo) error {
	path := filepath.Join(dir, modelInfoFile)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	b, err := json.MarshalIndent(mi, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// modelStore is one model's directory in the state directory.
type modelStore struct {
	dir  string
	info modelInfo
	fp   kvcache.Fingerprint
}

// modelStores lists the state directory's model directories.
func modelStores(state string) ([]modelStore, error) {
	ents, err := os.ReadDir(state)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("state directory: %w", err)
	}
	var out []modelStore
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(state, e.Name())
		b, err := os.ReadFile(filepath.Join(dir, modelInfoFile))
		if err != nil {
			continue
		}
		ms := modelStore{dir: dir}
		if json.Unmarshal(b, &ms.info) != nil {
			continue
		}
		if ms.fp, err = ms.info.fingerprint(); err != nil || fpDir(ms.fp) != e.Name() {
			continue
		}
		out = append(out, ms)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].dir < out[j].dir })
	return out, nil
}

// open locks the model directory and opens its store without the model
// (to inspect, delete, export and import sessions); call unlock when done.
func (ms modelStore) open() (d *runtime.DiskStore, unlock func(), err error) {
	secret, err := loadSecret(filepath.Dir(ms.dir))
	if err != nil {
		return nil, nil, err
	}
	if unlock, err = lockStore(ms.dir); err != nil {
		return nil, nil, err
	}
	d, err = runtime.OpenDiskStore(ms.dir, runtime.DiskOptions{Fingerprint: ms.fp, BlockBytes: ms.info.BlockBytes,
		Secret: secret})
	if err != nil {
		unlock()
		return nil, nil, err
	}
	return d, unlock, nil
}

// hasSession reports whether the model directory's store holds session
// id; busy means another process uses it, so it cannot tell.
func (ms modelStore) hasSession(id string) (has, busy bool) {
	d, unlock, err := ms.open()
	if err != nil {
		return false, errors.Is(err, errStoreBusy)
	}
	defer unlock()
	_, err = d.Peek(id)
	return err == nil || !errors.Is(err, runtime.ErrNotFound), false
}

// checkOtherModels returns an error if session id is stored only under
// another model than fp: the error names what differs.
func checkOtherModels(state string, fp kvcache.Fingerprint, id string) error {
	stores, err := modelStores(state)
	if err != nil {
		return err
	}
	for _, ms := range stores {
		if ms.fp == fp {
			continue
		}
		if has, _ := ms.hasSession(id); !has {
			continue
		}
		return fmt.Errorf("session %q was saved with another model (%s in %s): %w", id, ms.info.Name, ms.dir,
			fp.Check(ms.fp))
	}
	return nil
}

// findSession returns the model directory holding session id; sel, if
// set, picks the model directory by name prefix or model file name.
func findSession(state, id, sel string) (modelStore, error) {
	stores, err := modelStores(state)
	if err != nil {
		return modelStore{}, err
	}
	var found []modelStore
	var busy []string
	for _, ms := range stores {
		if sel != "" && !strings.HasPrefix(filepath.Base(ms.dir), sel) && ms.info.Name != sel {
			continue
		}
		has, b := ms.hasSession(id)
		if has {
			found = append(found, ms)
		}
		if b {
			busy = append(busy, ms.dir)
		}
	}
	switch {
	case len(found) == 0 && len(busy) > 0:
		return modelStore{}, fmt.Errorf("session %q: not found in the stores not in use; %w: %s", id, errStoreBusy,
			strings.Join(busy, ", "))
	case len(found) == 0:
		return modelStore{}, fmt.Errorf("session %q: %w in %s", id, runtime.ErrNotFound, state)
	case len(found) == 1:
		return found[0], nil
	}
	var names []string
	for _, ms := range found {
		names = append(names, filepath.Base(ms.dir)+" ("+ms.info.Name+")")
	}
	return modelStore{}, usagef("session %q is stored for %d models (%s): pick one with --model", id, len(found),
		strings.Join(names, ", "))
}

// storedKV returns the KV type of path's stored sessions in state, for a
// --kv left unset: the type of the store holding session id or, if id is
// "", of the first store holding any session (bf16, f32, fp8 in that
// order), so that sessions saved with another type are resumed rather
// than started afresh under the default. A store another process has
// locked counts as holding them, unless another store holds session id
// (the command then stops at its lock, where a new session of the same
// name under the default would fork the conversation). It returns ""
// when there is no such store, or the state directory cannot tell.
func storedKV(state, path string, src model.Source, mf *modelFlags, tokPath, id string) string {
	m := *mf
	m.kv = defaultKV
	fp, _, err := sessionFingerprint(path, src, &m, tokPath)
	if err != nil {
		return ""
	}
	stores, err := modelStores(state)
	if err != nil {
		return ""
	}
	busy := ""
	for _, kv := range []string{"bf16", "f32", "fp8"} {
		fp.KVType = kv
		for _, ms := range stores {
			if ms.fp != fp {
				continue
			}
			has, b := ms.hasSessions(id)
			if has || b && id == "" {
				return kv
			}
			if b && busy == "" {
				busy = kv
			}
		}
	}
	return busy
}

// hasSessions reports whether the model directory's store holds session
// id, or any session if id is ""; busy means another process uses it.
func (ms modelStore) hasSessions(id string) (has, busy bool) {
	if id != "" {
		return ms.hasSession(id)
	}
	d, unlock, err := ms.open()
	if err != nil {
		return false, errors.Is(err, errStoreBusy)
	}
	defer unlock()
	ids, err := d.List()
	return err == nil && len(ids) > 0, false
}
