package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/taskgate/taskgate/client"
	"github.com/taskgate/taskgate/examples/quickstart/demo"
)

func Example() {
	base, token, stop := quickstart() // what `make run` serves, on loopback
	defer stop()

	ctx := context.Background()
	c, err := client.New(base, &client.Options{Credentials: client.BearerToken(token)})
	if err != nil {
		log.Fatal(err)
	}
	out, err := client.Run(ctx, c, demo.Echo, demo.EchoInput{Message: "hi"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(out.Message)
	// Output: hi
}

func ExampleError() {
	base, token, stop := quickstart()
	defer stop()

	ctx := context.Background()
	c, err := client.New(base, &client.Options{Credentials: client.BearerToken(token)})
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.Submit(ctx, "demo/development/sleep", map[string]any{"seconds": -1}, nil)
	var apiErr *client.Error
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.Status, apiErr.Detail)
		for _, f := range apiErr.Errors {
			fmt.Println(f.Location, f.Value)
		}
	}
	// Output:
	// 422 validation failed
	// body.seconds -1
}

func ExampleClient_List() {
	base, token, stop := quickstart()
	defer stop()

	ctx := context.Background()
	c, err := client.New(base, &client.Options{Credentials: client.BearerToken(token)})
	if err != nil {
		log.Fatal(err)
	}
	for _, msg := range []string{"one", "two", "three"} {
		if _, err := client.Run(ctx, c, demo.Echo, demo.EchoInput{Message: msg}); err != nil {
			log.Fatal(err)
		}
	}
	// Newest first, read two per request.
	for run, err := range c.List(ctx, &client.ListOptions{Task: "demo/development/echo", PageSize: 2}) {
		if err != nil {
			log.Fatal(err)
		}
		io, err := c.IO(ctx, run.Name)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(run.Phase, string(io.Inputs))
	}
	// Output:
	// succeeded {"message":"three"}
	// succeeded {"message":"two"}
	// succeeded {"message":"one"}
}
