run ->(_env) { [200, {"content-type" => "text/plain"}, ["hooked #{Process.pid}\n"]] }
