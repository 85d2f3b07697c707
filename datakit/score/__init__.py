"""`datakit score`: evaluate predictions on a run's eval split (metrics, slices, floors, bootstrap intervals)."""
