"""The fleet bridge: this box's cameras on an MQTT broker (PROTOCOL 12)."""
