from smug.command import main

main()
