import warnings

# eventlet announces its maintenance mode on import; nameko 2 needs it all the same (docs/stack-notes.md, "Warnings").
warnings.filterwarnings("ignore", message=".*Eventlet is deprecated.*")
