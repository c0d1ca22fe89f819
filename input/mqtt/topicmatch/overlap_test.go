package topicmatch

import "testing"

func TestOverlaps(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"sensors/+/zone1", "sensors/temp/#", true},
		{"sensors/+/zone1", "devices/+/telemetry", false},
		{"a/#", "a", true},
		{"a/+", "a", false},
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"+/x", "y/+", true},
		{"a/b/c", "a/b", false},
		{"#", "anything/at/all", true},
		{"sensors/{kind}/zone1", "sensors/temp/zone1", true},
		{"$share/g/a/+", "a/b", true},
		{"#", "$SYS/broker", false},
		{"+/broker", "$SYS/broker", false},
		{"$SYS/#", "$SYS/broker/load", true},
	}
	for _, tt := range tests {
		t.Run(tt.a+" vs "+tt.b, func(t *testing.T) {
			a, b := mustParse(t, tt.a), mustParse(t, tt.b)
			if got := a.Overlaps(b); got != tt.want {
				t.Errorf("%q.Overlaps(%q) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
			if got := b.Overlaps(a); got != tt.want {
				t.Errorf("%q.Overlaps(%q) = %v, want %v (not symmetric)", tt.b, tt.a, got, tt.want)
			}
		})
	}
}
