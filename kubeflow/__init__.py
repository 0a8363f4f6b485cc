"""Run the pipeline on Kubeflow Pipelines: compile, schedule, image and serving manifests."""
