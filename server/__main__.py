from smug.server.main import main

main()
