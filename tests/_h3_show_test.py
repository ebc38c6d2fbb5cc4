from callcenter.settings import ToneSettings
from speech.tone import ToneStage
from tests.test_tone import feed, updates, alerts, ESCALATING, CALM_LINES, CALM_VOICE, _third_utterance, NEUTRAL_WORDS, ANGRY_WORDS, AGITATED_VOICE

def test_show(tts):
    for name, lines in [("esc", [(tts(t, pitch=p, speed=s, amplitude=a), t) for t, p, s, a in ESCALATING]),
                        ("calm", [(tts(l, **CALM_VOICE), l) for l in CALM_LINES])]:
        st = ToneStage(ToneSettings()); ev, _ = feed(st, lines)
        for e in ev: print(name, e.type.value, getattr(e,'label',''), round(e.score,3), round(getattr(e,'trend',0),3), getattr(e,'signals',None) or getattr(e,'reasons',None))
    for nm, (txt, v) in {"control":(NEUTRAL_WORDS,CALM_VOICE),"angrywords":(ANGRY_WORDS,CALM_VOICE),"agitated":(NEUTRAL_WORDS,AGITATED_VOICE)}.items():
        u=_third_utterance(tts, txt, v); print(nm, u.label, round(u.score,3), u.signals)
