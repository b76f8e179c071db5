# Each hook appends a line to the file named by HOOKS_LOG.
def self.note(event)
  File.open(ENV.fetch("HOOKS_LOG"), "a") { |file| file.puts("#{event} #{Process.pid}") }
end

on_worker_boot { note("worker_boot") }
on_worker_shutdown { note("worker_shutdown") }
on_thread_boot { note("thread_boot") }
on_thread_shutdown { note("thread_shutdown") }
