"""Test support that no benchmark needs: Firefox over WebDriver BiDi, a private PulseAudio sink,
the openai package's validation of events, and the vLLM smoke run."""
