package sd

import (
	"fmt"
	"reflect"

	"lorastudio/nn"
)

// The binder fills a module tree's weights from a WeightSource by diffusers
// names, the way ollama's model structs are filled from GGUF names: a module
// is a struct whose fields are its weights and sub-modules, and a struct tag
// `st:"name"` gives each field's name relative to the module. Names may hold
// dots (`st:"ff.net.0.proj"`, `st:"to_out.0"`).
//
// Tagged field kinds:
//
//	*nn.Tensor  a weight. The module's constructor sets the field to a
//	            placeholder holding only the expected Shape (see weight), so a
//	            checkpoint of another configuration fails with the key name.
//	            A nil field is a weight this configuration does not have
//	            (a Linear without bias, a ResBlock without a shortcut).
//	*T          a sub-module (T a struct), bound under "name."; nil = absent.
//	[]*T        numbered sub-modules, bound under "name.0.", "name.1.", ...
//
// Untagged fields are configuration or runtime state and are left alone.

// weight returns the placeholder a constructor puts in a weight field: the
// expected shape and no data until Bind replaces it.
func weight(shape ...int) *nn.Tensor {
	return &nn.Tensor{Shape: shape}
}

var tensorType = reflect.TypeFor[*nn.Tensor]()

// Bind replaces every weight placeholder in module m (a pointer to a module
// struct) with the tensor src holds under prefix + the field's path, checking
// its shape. prefix is "" or ends with a dot.
func Bind(src WeightSource, prefix string, m any) error {
	return walk(prefix, reflect.ValueOf(m), func(name string, v reflect.Value) error {
		if v.Type() != tensorType {
			return nil
		}
		t := v.Interface().(*nn.Tensor)
		w, err := src.Tensor(name, t.Shape...)
		if err != nil {
			return err
		}
		if !nn.SameShape(w.Shape, t.Shape) {
			return fmt.Errorf("weight %s: shape %v, want %v", name, w.Shape, t.Shape)
		}
		v.Set(reflect.ValueOf(w))
		return nil
	})
}

// Walk calls fn for every present sub-module of m (m included, under
// strings.TrimSuffix(prefix, ".")) with its full dotted name, parents before
// children, in field order. It is how adapters find a Linear by its diffusers
// name.
func Walk(prefix string, m any, fn func(name string, module any) error) error {
	root := prefix
	if n := len(root); n > 0 && root[n-1] == '.' {
		root = root[:n-1]
	}
	if err := fn(root, m); err != nil {
		return err
	}
	return walk(prefix, reflect.ValueOf(m), func(name string, v reflect.Value) error {
		if v.Type() == tensorType {
			return nil
		}
		return fn(name, v.Interface())
	})
}

// walk visits the tagged, non-nil fields below the struct pointer v: weights
// and modules, each with its full name; modules are then descended into.
func walk(prefix string, v reflect.Value, fn func(name string, v reflect.Value) error) error {
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("bind %s: %v is not a pointer to a module struct", prefix, v.Type())
	}
	s := v.Elem()
	for i := 0; i < s.NumField(); i++ {
		tag, ok := s.Type().Field(i).Tag.Lookup("st")
		if !ok {
			continue
		}
		f := s.Field(i)
		name := prefix + tag
		switch {
		case f.Type() == tensorType:
			if !f.IsNil() {
				if err := fn(name, f); err != nil {
					return err
				}
			}
		case f.Kind() == reflect.Pointer:
			if err := visitModule(name, f, fn); err != nil {
				return err
			}
		case f.Kind() == reflect.Slice:
			for j := 0; j < f.Len(); j++ {
				if err := visitModule(fmt.Sprintf("%s.%d", name, j), f.Index(j), fn); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("bind %s: field of type %v cannot hold weights", name, f.Type())
		}
	}
	return nil
}

func visitModule(name string, f reflect.Value, fn func(string, reflect.Value) error) error {
	if f.IsNil() {
		return nil
	}
	if err := fn(name, f); err != nil {
		return err
	}
	return walk(name+".", f, fn)
}
