from smug.clients.cli import main

main()
