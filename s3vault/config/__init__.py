"""The declarative config file: its model, its schema, its environment overrides."""
