require "helper"
run ->(_env) { [200, {"content-type" => "text/plain"}, ["#{Helper::GREETING} #{Dir.pwd}\n"]] }
