"""The Lightroom bridge: the agent's loopback HTTP long-poll endpoint that the Photonic
Lightroom plugin speaks (docs/lightroom-bridge.md), so Lightroom can run jobs as an executor."""
