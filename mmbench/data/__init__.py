"""The data layer: providers, schema, splits, fingerprints, preprocessing."""
