package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/mnemo-ai/mnemo/engine/model"
	"github.com/mnemo-ai/mnemo/runtime"
)

func init() {
	register(&Command{Name: "sessions list", Args: "[--state-dir DIR]",
		Summary: "list the stored sessions: id, tokens, last update, KV size, model", Run: runSessionsList})
	register(&Command{Name: "sessions show", Args: "ID [--model HASH|NAME] [--state-dir DIR]",
		Summary: "show a stored session's metadata and messages", Run: runSessionsShow})
	register(&Command{Name: "sessions rm", Args: "ID... [--model HASH|NAME] [--state-dir DIR]",
		Summary: "delete stored sessions", Run: runSessionsRm})
	register(&Command{Name: "sessions export", Args: "ID -o FILE [--model HASH|NAME] [--state-dir DIR]",
		Summary: "write a stored session (snapshot and KV blocks) to one portable file", Run: runSessionsExport})
	register(&Command{Name: "sessions import", Args: "FILE MODEL [--as ID] [--weights W] [--kv T] [--tokenizer F] [--state-dir DIR]",
		Summary: "install an exported session for MODEL after checking its fingerprint and checksums", Run: runSessionsImport})
}

// sessionFlags parses the flags common to the sessions commands.
func sessionFlags(env Env, name string, args []string, extra func(*flag.FlagSet)) (state string, sel string, pos []string, err error) {
	fs := newFlagSet(env, name)
	dir := stateDirFlag(fs)
	var m *string
	if name != "sessions list" && name != "sessions import" {
		m = fs.String("model", "", "the model directory (hash prefix) or model file name, when the id is stored for several")
	}
	if extra != nil {
		extra(fs)
	}
	if pos, err = parseFlags(fs, args); err != nil {
		return "", "", nil, err
	}
	if state, err = resolveStateDir(env, *dir); err != nil {
		return "", "", nil, err
	}
	if m != nil {
		sel = *m
	}
	return state, sel, pos, nil
}

// openStored finds the model store holding session id (sel narrows the
// search to one model) and opens it, locked; call unlock when done.
// (show opens it itself: it also prints the store's model.)
func openStored(state, id, sel string) (d *runtime.DiskStore, unlock func(), err error) {
	ms, err := findSession(state, id, sel)
	if err != nil {
		return nil, nil, err
	}
	return ms.open()
}

func checkIDs(ids []string) error {
	for _, id := range ids {
		if err := runtime.ValidateID(id); err != nil {
			return usagef("%v", err)
		}
	}
	return nil
}

func runSessionsList(_ context.Context, env Env, args []string) error {
	state, _, pos, err := sessionFlags(env, "sessions list", args, nil)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("want no arguments")
	}
	stores, err := modelStores(state)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(env.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTOKENS\tCACHED\tUPDATED\tSIZE\tMODEL")
	for _, ms := range stores {
		d, unlock, err := ms.open()
		if errors.Is(err, errStoreBusy) {
			fmt.Fprintf(tw, "-\t-\t-\t-\t-\t%s (%s: in use by another process)\n", ms.info.Name, filepath.Base(ms.dir))
			continue
		}
		if err != nil {
			return err
		}
		ids, err := d.List()
		defer unlock()
		if err != nil {
			return err
		}
		for _, id := range ids {
			info, err := d.Stat(id)
			if err != nil {
				fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t%s (%s: %v)\n", id, ms.info.Name, filepath.Base(ms.dir), err)
				continue
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s (%s)\n", id, info.Tokens, info.Cached,
				info.Meta.Updated.Local().Format(time.DateTime), humanBytes(uint64(info.Bytes)), ms.info.Name, filepath.Base(ms.dir))
		}
	}
	return tw.Flush()
}

func runSessionsShow(_ context.Context, env Env, args []string) error {
	state, sel, pos, err := sessionFlags(env, "sessions show", args, nil)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want exactly one ID")
	}
	if err := checkIDs(pos); err != nil {
		return err
	}
	ms, err := findSession(state, pos[0], sel)
	if err != nil {
		return err
	}
	d, unlock, err := ms.open()
	if err != nil {
		return err
	}
	defer unlock()
	info, err := d.Stat(pos[0])
	if err != nil {
		return err
	}
	st, err := d.Peek(pos[0])
	if err != nil {
		return err
	}
	w := env.Stdout
	fmt.Fprintf(w, "id:       %s\n", info.ID)
	fmt.Fprintf(w, "model:    %s (%s, weights %s, kv %s)\n", ms.info.Name, filepath.Base(ms.dir), ms.info.Weights, ms.info.KV)
	if info.Meta.Tenant != "" {
		fmt.Fprintf(w, "tenant:   %s\n", info.Meta.Tenant)
	}
	fmt.Fprintf(w, "created:  %s\n", info.Meta.Created.Local().Format(time.DateTime))
	fmt.Fprintf(w, "updated:  %s\n", info.Meta.Updated.Local().Format(time.DateTime))
	fmt.Fprintf(w, "tokens:   %d (%d with KV stored)\n", info.Tokens, info.Cached)
	fmt.Fprintf(w, "kv size:  %s\n", humanBytes(uint64(info.Bytes)))
	fmt.Fprintf(w, "messages: %d\n", len(st.Messages))
	for _, m := range st.Messages {
		fmt.Fprintf(w, "\n[%s]\n%s\n", m.Role, m.Content)
	}
	return nil
}

func runSessionsRm(ctx context.Context, env Env, args []string) error {
	state, sel, pos, err := sessionFlags(env, "sessions rm", args, nil)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("want at least one ID")
	}
	if err := checkIDs(pos); err != nil {
		return err
	}
	var errs []error
	for _, id := range pos {
		d, unlock, err := openStored(state, id, sel)
		if err == nil {
			err = d.Delete(ctx, id)
			unlock()
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(env.Stderr, "deleted %s\n", id)
	}
	return errors.Join(errs...)
}

func runSessionsExport(_ context.Context, env Env, args []string) error {
	var out *string
	state, sel, pos, err := sessionFlags(env, "sessions export", args, func(fs *flag.FlagSet) {
		out = fs.String("o", "", "output file")
	})
	if err != nil {
		return err
	}
	if len(pos) != 1 || *out == "" {
		return usagef("want one ID and -o FILE")
	}
	if err := checkIDs(pos); err != nil {
		return err
	}
	d, unlock, err := openStored(state, pos[0], sel)
	if err != nil {
		return err
	}
	defer unlock()
	if err := d.Check(pos[0]); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(*out), ".tmp-export-")
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer os.Remove(f.Name())
	err = d.Export(pos[0], f)
	if err = errors.Join(err, f.Sync(), f.Close()); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), *out); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	st, _ := os.Stat(*out)
	fmt.Fprintf(env.Stderr, "exported %s to %s (%s)\n", pos[0], *out, humanBytes(uint64(st.Size())))
	return nil
}

func runSessionsImport(_ context.Context, env Env, args []string) error {
	var as, tokPath *string
	var mf modelFlags
	state, _, pos, err := sessionFlags(env, "sessions import", args, func(fs *flag.FlagSet) {
		as = fs.String("as", "", "install under this id (default: the exported id)")
		tokPath = fs.String("tokenizer", "", "llama2.c tokenizer.bin the session was run with")
		mf.register(fs)
	})
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("want FILE and MODEL")
	}
	if *as != "" {
		if err := checkIDs([]string{*as}); err != nil {
			return err
		}
	}
	data, err := os.ReadFile(pos[0])
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if err := mf.checkKV(); err != nil {
		return err
	}
	e, err := runtime.DecodeExport(data)
	if err != nil {
		return fmt.Errorf("import %s: %w", pos[0], err)
	}
	if mf.kv == "" {
		// The session's own KV type, which the fingerprint check below
		// would otherwise refuse.
		mf.kv = e.Snapshot.Fingerprint.KVType
		if _, err := kvDType(mf.kv); err != nil {
			return fmt.Errorf("import %s: session %q has KV type %q: %w", pos[0], e.ID, mf.kv, runtime.ErrFingerprint)
		}
	}
	src, err := model.Open(pos[1])
	if err != nil {
		return err
	}
	defer src.Close()
	fp, mi, err := sessionFingerprint(pos[1], src, &mf, *tokPath)
	if err != nil {
		return err
	}
	dir := filepath.Join(state, fpDir(fp))
	if err := fp.Check(e.Snapshot.Fingerprint); err != nil {
		return fmt.Errorf("import %s: session %q: %w: %w", pos[0], e.ID, runtime.ErrFingerprint, err)
	}
	if err := writeModelInfo(dir, mi); err != nil {
		return err
	}
	ms := modelStore{dir: dir, info: mi, fp: fp}
	d, unlock, err := ms.open()
	if err != nil {
		return err
	}
	defer unlock()
	id, err := d.Import(data, *as)
	if err != nil {
		return fmt.Errorf("import %s: %w", pos[0], err)
	}
	fmt.Fprintf(env.Stderr, "imported %s for %s (%s)\n", id, mi.Name, filepath.Base(dir))
	return nil
}
