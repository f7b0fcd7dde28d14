import ContactctlCommand

await ContactctlMain.main()
