# The isolation specs (test/isolation), for the Makefile to include after
# PGXS:
#
#   make isolationcheck      # as a user that may run PostgreSQL, after make install
#
# runs test/isolation/run.sh with the PG_CONFIG the build uses: it builds
# the test-only module in test/isolation/output, starts the stand-in and
# runs pg_isolation_regress on a temporary instance.  Nothing is installed.

isolationcheck:
	PG_CONFIG='$(PG_CONFIG)' '$(srcdir)/test/isolation/run.sh'

# what run.sh leaves (results, diffs, the module it built), wherever this
# file is included (the Makefile sets EXTRA_CLEAN after PGXS)
clean: isolation-clean
isolation-clean:
	rm -rf $(srcdir)/test/isolation/output

.PHONY: isolationcheck isolation-clean
