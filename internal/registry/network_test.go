package registry_test

import (
	"errors"
	"testing"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/registry"
)

func TestCheckNetwork(t *testing.T) {
	for _, tc := range []struct {
		v      string
		egress bool
		ok     bool
	}{
		{"egress", true, true}, {"none", true, true}, {"none", false, true},
		{"egress", false, false}, {"", true, false}, {"Egress", true, false}, {"host", false, false},
	} {
		err := registry.CheckNetwork(tc.v, tc.egress)
		if (err == nil) != tc.ok {
			t.Errorf("CheckNetwork(%q, %v) = %v, want ok=%v", tc.v, tc.egress, err, tc.ok)
		}
		var le *lambdaerr.Error
		if err != nil && (!errors.As(err, &le) || le.Code != lambdaerr.InvalidParameterValue) {
			t.Errorf("CheckNetwork(%q, %v) = %v, want an InvalidParameterValueException", tc.v, tc.egress, err)
		}
	}
	f := registry.Function{Network: "host"}
	if err := f.Validate(); err == nil {
		t.Error("Validate accepts a function with Network host")
	}
}
