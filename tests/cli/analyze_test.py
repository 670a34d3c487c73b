import sys
sys.exit(77)  # placeholder until implemented
