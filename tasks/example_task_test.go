package tasks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/danielgtaylor/huma/v2"

	"github.com/taskgate/taskgate/tasks"
)

// GreetInput is what the greet task takes.
type GreetInput struct {
	Name  string `json:"name" minLength:"1" doc:"Who to greet."`
	Times int    `json:"times,omitempty" minimum:"1" maximum:"3"`
}

// GreetOutput is what it returns.
type GreetOutput struct {
	Text string `json:"text"`
}

// Defining a task: a plain Go function, its names, and what it needs.
func ExampleDefine() {
	greet, err := tasks.Define("demo", "development", "greet",
		func(ctx context.Context, in GreetInput) (GreetOutput, error) {
			return GreetOutput{Text: "hello " + in.Name}, nil
		},
		&tasks.Options{
			Description: "Greets someone.",
			Resources:   tasks.Resources{CPU: "500m", Memory: "1Gi", GPU: "H100:1", GPUFallbacks: []string{"A100-80GB:1"}},
		})
	if err != nil {
		panic(err)
	}
	reg := tasks.NewRegistry()
	reg.MustRegister(greet)

	d, _ := reg.Lookup("demo", "development", "greet")
	fmt.Println(d.ID())
	fmt.Println(d.Request.MilliCPU, d.Request.MemoryBytes)
	for _, g := range d.Request.GPUs {
		fmt.Println(g)
	}
	out, _ := d.Invoke(context.Background(), json.RawMessage(`{"name":"Ada"}`))
	fmt.Println(string(out))
	// Output:
	// demo/development/greet
	// 500 1073741824
	// H100:1
	// A100-80GB:1
	// {"text":"hello Ada"}
}

// A task's input schema is generated from its Go type by huma's schema
// registry: this is what GET /task/… shows and what run-task validates.
func ExampleDefinition_inputSchema() {
	greet := tasks.MustDefine("demo", "development", "greet",
		func(ctx context.Context, in GreetInput) (GreetOutput, error) { return GreetOutput{}, nil }, nil)
	reg := huma.NewMapRegistry("#/components/schemas/", huma.DefaultSchemaNamer)
	s := reg.Schema(greet.Definition().InputType, false, "")
	fmt.Println(s.Required, *s.Properties["name"].MinLength, *s.Properties["times"].Maximum)
	fmt.Println(reflect.TypeFor[GreetOutput]() == greet.Definition().OutputType)
	// Output:
	// [name] 1 3
	// true
}
