"""Wire protocol: OpenAI Realtime (GA) client and server events, session configuration."""
