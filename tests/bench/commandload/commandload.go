// Package commandload is the load of the downlink benchmark, shared by the
// benchmark (which produces it to Danube for the bridge) and the raw paho
// publisher (tests/bench/rawpub), so both publish the same bytes.
package commandload

import "fmt"

// Topic is the MQTT command topic of device d: devices/<prefix>-d<d>/commands,
// what config/danube-to-mqtt.yaml publishes to for device id <prefix>-d<d>.
func Topic(prefix string, d int) string { return fmt.Sprintf("devices/%s/commands", Device(prefix, d)) }

// Device is the id of device d.
func Device(prefix string, d int) string { return fmt.Sprintf("%s-d%d", prefix, d) }

// Payload is the i-th command of device d, padded with 'x' to size bytes:
// "<device> <i, 8 digits> xxx…". The benchmark's subscriber reads i back to
// check the order per device.
func Payload(prefix string, d, i, size int) []byte {
	b := []byte(fmt.Sprintf("%s %08d ", Device(prefix, d), i))
	for len(b) < size {
		b = append(b, 'x')
	}
	return b
}
