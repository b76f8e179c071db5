# Found on $LOAD_PATH because it is in the application's working_directory.
module Helper
  GREETING = "loaded helper.rb from the working directory".freeze
end
