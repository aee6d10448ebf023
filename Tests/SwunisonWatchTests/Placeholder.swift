// The watcher's tests live here (issue 12); this file goes once they do.
