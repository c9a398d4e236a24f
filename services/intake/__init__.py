"""intake: every channel's raw submission -> one registered canonical appeal."""
