"""Offline speech recognition behind one streaming interface (vosk, pocketsphinx)."""
