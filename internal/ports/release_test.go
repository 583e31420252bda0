package ports

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"os"
	"slices"
	"testing"
)

func TestRelease(t *testing.T) {
	r := quietRange(t, 1)
	p := r.Min
	dir := t.TempDir()
	a := newAllocator(t, Options{Dir: dir})
	ctx := context.Background()
	if got, err := a.Allocate(ctx, r, "a"); err != nil || got != p {
		t.Fatalf("Allocate = %d, %v", got, err)
	}

	if err := a.Release(p, "b"); err != nil {
		t.Fatalf("Release by another owner: %v", err)
	}
	if owners(t, dir)[p] != "a" {
		t.Fatal("Release by another owner touched the reservation")
	}
	if got, err := a.Allocate(ctx, r, "c"); !errors.Is(err, ErrNoFreePort) {
		t.Fatalf("Allocate after a foreign Release = %d, %v", got, err)
	}

	if err := a.Release(p, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(portPath(dir, p)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("file after Release: %v", err)
	}
	if err := a.Release(p, "a"); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	if _, err := os.Stat(portPath(dir, p)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("Release of a free port created its file")
	}
	if got, err := a.Allocate(ctx, r, "c"); err != nil || got != p {
		t.Fatalf("Allocate after Release = %d, %v", got, err)
	}
	if err := a.Release(0, "c"); err == nil {
		t.Fatal("Release(0): no error")
	}
}

func TestReleaseOwner(t *testing.T) {
	r := quietRange(t, 5)
	dir := t.TempDir()
	a := newAllocator(t, Options{Dir: dir})
	ctx := context.Background()
	held := map[string][]int{}
	for _, o := range []string{"a", "b", "a", "b", "a"} {
		p, err := a.Allocate(ctx, r, o)
		if err != nil {
			t.Fatal(err)
		}
		held[o] = append(held[o], p)
	}
	if err := a.ReleaseOwner("a"); err != nil {
		t.Fatal(err)
	}
	left := slices.Sorted(maps.Keys(owners(t, dir)))
	if want := slices.Sorted(slices.Values(held["b"])); !slices.Equal(left, want) {
		t.Fatalf("left %v, want b's %v", left, want)
	}
	var again []int
	for range 3 {
		p, err := a.Allocate(ctx, r, "c")
		if err != nil {
			t.Fatal(err)
		}
		again = append(again, p)
	}
	slices.Sort(again)
	if want := slices.Sorted(slices.Values(held["a"])); !slices.Equal(again, want) {
		t.Fatalf("reallocated %v, want a's %v", again, want)
	}
	if err := a.ReleaseOwner("nobody"); err != nil {
		t.Fatal(err)
	}
}

func TestReclaimRemovesJunk(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"port-30001": "", "port-30002": "{bad", "port-30003": `{"port":1,"owner":"x"}`} {
		if err := os.WriteFile(dir+"/"+name, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(dir+"/notes.txt", []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := newAllocator(t, Options{Dir: dir})
	freed, err := a.Reclaim(context.Background())
	if err != nil || len(freed) != 0 {
		t.Fatalf("Reclaim = %v, %v; want nothing freed", freed, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "notes.txt" {
		t.Fatalf("left %v", entries)
	}
}
