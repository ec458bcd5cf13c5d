"""WebRTC pieces both peers use: the paced audio track, inbound frame decoding, ICE servers and loopback candidates (the service's transport and the SDK's client build on them)."""
