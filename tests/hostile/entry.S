/* PVH entry of the hostile guest: the VMM enters here in 32-bit protected mode, paging
   off, interrupts off, with the physical address of hvm_start_info in %ebx and no
   stack. hostile_main's return value is the exit status written to port 0x501. */
	.section .note.GNU-stack, "", @progbits
	.section .note.pvh, "a", @note
	.balign 4
	.long 4			/* name size */
	.long 4			/* descriptor size */
	.long 18		/* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.long _start

	.section .text.entry, "ax"
	.code32
	.globl _start
_start:
	cli
	cld
	movl $stack_top, %esp
	pushl %ebx
	call hostile_main
	movw $0x501, %dx
	outb %al, %dx
1:	hlt
	jmp 1b

	.section .bss
	.balign 16
	.skip 65536
stack_top:
