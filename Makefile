# The two commands of the README. Both are idempotent.
.PHONY: lab test

lab:  ## install what is missing and start JupyterLab with the extension
	@scripts/setup.sh lab
	@scripts/lab.sh

test:  ## install test needs and run lint, types and the whole suite
	@scripts/setup.sh test
	@scripts/test.sh
