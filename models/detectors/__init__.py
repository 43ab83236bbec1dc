"""The detectors, each a small class in the River manner: ``score_one`` judges an event
against the state it is given and returns findings; ``learn_one`` folds an event judged
normal into that state. Scoring never learns and learning never scores, so the engine
decides what is learned (a flagged claim never moves a baseline)."""
