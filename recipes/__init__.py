"""The shipped recipes (`factory run NAME`) and accelerate configs: YAML files installed as package data."""
