import warnings

# eventlet announces its maintenance mode on import; nameko 2 needs it all the same (STACK.md, trap 23).
warnings.filterwarnings("ignore", message=".*Eventlet is deprecated.*")
