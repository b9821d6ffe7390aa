package main

import (
	"context"
	"flag"
	"log"
	"os"
	"path/filepath"

	"github.com/taskgate/taskgate/openapi"
)

func main() {
	dir := flag.String("dir", "openapi", "folder to write the documents to")
	flag.Parse()
	docs, err := openapi.Generate(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	for name, b := range docs {
		if err := os.WriteFile(filepath.Join(*dir, name), b, 0o644); err != nil {
			log.Fatal(err)
		}
		log.Printf("wrote %s (%d bytes)", filepath.Join(*dir, name), len(b))
	}
}
