"""Speaking policies: when reply text is handed to TTS while the model is still reasoning."""
