package danubeout

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// This file reads typed values out of message metadata: the text of a value
// (for attributes and dead-letter records) and the number or boolean of the
// routing metadata (danube_partitions, danube_reliable_dispatch).

// metaString is the text of a metadata value, as Benthos' MetaGet gives it.
// The common types are formatted here: Benthos formats an int (the mqtt
// input's mqtt_qos and mqtt_message_id) through a JSON encoder, which
// profiles showed at 4 % of the bridge's CPU.
func metaString(msg *service.Message, k string, v any) string {
	switch t := v.(type) {
	case string:
		return t
	case int:
		return strconv.Itoa(t)
	case int64:
		return strconv.FormatInt(t, 10)
	case bool:
		return strconv.FormatBool(t)
	case []byte:
		return string(t)
	}
	s, _ := msg.MetaGet(k)
	return s
}

// toInt64 reads an integer from a metadata value: any integer type, a
// whole float64, a json.Number, or decimal text.
func toInt64(v any) (int64, bool) {
	switch t := v.(type) {
	case int:
		return int64(t), true
	case int8:
		return int64(t), true
	case int16:
		return int64(t), true
	case int32:
		return int64(t), true
	case int64:
		return t, true
	case uint:
		return int64(t), true
	case uint8:
		return int64(t), true
	case uint16:
		return int64(t), true
	case uint32:
		return int64(t), true
	case uint64:
		return int64(t), true
	case float64:
		if t == float64(int64(t)) {
			return int64(t), true
		}
	case json.Number:
		n, err := t.Int64()
		return n, err == nil
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
		return n, err == nil
	case []byte:
		n, err := strconv.ParseInt(strings.TrimSpace(string(t)), 10, 64)
		return n, err == nil
	}
	return 0, false
}

// toBool reads a boolean from a metadata value: a bool, text strconv.ParseBool
// accepts, or an integer (non-zero is true).
func toBool(v any) (bool, bool) {
	switch t := v.(type) {
	case bool:
		return t, true
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(t))
		return b, err == nil
	case []byte:
		b, err := strconv.ParseBool(strings.TrimSpace(string(t)))
		return b, err == nil
	}
	if n, ok := toInt64(v); ok {
		return n != 0, true
	}
	return false, false
}
