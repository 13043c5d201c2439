package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/internal/atomicfile"
)

// removeTokenFromFile rewrites the tokens file without the entries whose
// token (or sha256) hashes to h, keeping the other entries and the
// comments, atomically: a reader or a restart sees the old file or the new
// one. It returns how many entries it removed.
func removeTokenFromFile(file string, h [32]byte) (int, error) {
	info, err := os.Stat(file)
	if err != nil {
		return 0, &TokensFileError{Path: file, Err: err}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, &TokensFileError{Path: file, Err: err}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return 0, &TokensFileError{Path: file, Err: fmt.Errorf("%v: fix the file, then revoke again", err)}
	}
	seq := tokensSequence(&doc)
	if seq == nil {
		return 0, &TokensFileError{Path: file, Err: fmt.Errorf("no tokens: list: it changed since the edge read it; fix it, then revoke again")}
	}
	kept := seq.Content[:0:0]
	for _, entry := range seq.Content {
		if entryHash(entry) == h {
			continue
		}
		kept = append(kept, entry)
	}
	removed := len(seq.Content) - len(kept)
	if removed == 0 {
		return 0, nil
	}
	if len(kept) == 0 {
		return 0, &TokensFileError{Path: file, Err: fmt.Errorf("it is the file's last token, and an edge without tokens cannot start: add another token first")}
	}
	seq.Content = kept
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return 0, &TokensFileError{Path: file, Err: err}
	}
	enc.Close()
	if err := atomicfile.Write(file, buf.Bytes(), info.Mode().Perm()); err != nil {
		return 0, &TokensFileError{Path: file, Err: err}
	}
	return removed, nil
}

// tokensSequence finds the sequence under tokens: in a parsed tokens file.
func tokensSequence(doc *yaml.Node) *yaml.Node {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "tokens" && m.Content[i+1].Kind == yaml.SequenceNode {
			return m.Content[i+1]
		}
	}
	return nil
}

// entryHash is the SHA-256 an entry of the tokens file stands for.
func entryHash(entry *yaml.Node) (h [32]byte) {
	if entry.Kind != yaml.MappingNode {
		return h
	}
	for i := 0; i+1 < len(entry.Content); i += 2 {
		k, v := entry.Content[i].Value, entry.Content[i+1].Value
		switch k {
		case "token":
			return sha256.Sum256([]byte(v))
		case "sha256":
			if b, err := hex.DecodeString(strings.TrimSpace(v)); err == nil && len(b) == 32 {
				copy(h[:], b)
				return h
			}
		}
	}
	return h
}
