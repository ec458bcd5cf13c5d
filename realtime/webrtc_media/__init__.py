"""WebRTC pieces both peers use: the paced audio track, inbound frames, ICE servers, loopback.

The service's transport (``transports/webrtc/``) and the SDK's client build on them.
"""
