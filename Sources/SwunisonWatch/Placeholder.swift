// The inotify watcher lives here (issue 12); this file goes once it does.
