"""Speech: frames in, typed events out (VAD, ASR, dead air, tone, DTMF, talk-over)."""
