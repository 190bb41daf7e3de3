"""How the processes run: child processes, periodic threads, structured logs, the heap."""
