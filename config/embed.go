// Package config embeds the shipped pipeline configurations, so that the
// binary (the demo subcommand) runs exactly the files users copy.
package config

import _ "embed"

// MQTTToDanube is config/mqtt-to-danube.yaml: the Rust connector's reference
// setup (four topic mappings, persistent session, Rust-compatible Danube
// attributes) with URLs and secrets taken from environment variables.
//
//go:embed mqtt-to-danube.yaml
var MQTTToDanube []byte

// MQTTToDanubePath is the path of MQTTToDanube relative to the repository root.
const MQTTToDanubePath = "config/mqtt-to-danube.yaml"

// DanubeToMQTT is config/danube-to-mqtt.yaml: device commands from a Danube
// topic to each device's MQTT command topic (the downlink), with URLs and
// secrets taken from environment variables.
//
//go:embed danube-to-mqtt.yaml
var DanubeToMQTT []byte

// DanubeToMQTTPath is the path of DanubeToMQTT relative to the repository root.
const DanubeToMQTTPath = "config/danube-to-mqtt.yaml"

// MQTT5 is config/mqtt5.yaml: an MQTT 5 input whose properties reach Danube
// under Danube Edge's attribute names (`benthos-danube demo --config
// config/mqtt5.yaml` shows them for the simulated devices).
//
//go:embed mqtt5.yaml
var MQTT5 []byte
