"""`mloop init`'s project scaffold: the files of a new project and its sample data.

`project.write_project` renders the templates in `templates/` (params.yaml, features.yaml,
dvc.yaml, Makefile, tests, CI, README) into a folder; `samples` makes the sample tables.
"""
