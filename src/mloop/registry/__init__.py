"""mloop's layer over MLflow's model registry: references, stages as aliases, history."""
