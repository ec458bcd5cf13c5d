"""Text-to-speech: streaming text segmentation and the speech backends (espeak-ng, CosyVoice)."""
